"""One testbed per machine: the lock that refuses a second one, naming the first."""

import pytest

from topologies.builder import MachineLock, TestbedBusy


def test_a_second_holder_is_refused_with_the_first_ones_name(tmp_path):
    path = tmp_path / "lock"
    first, second = MachineLock(path), MachineLock(path)
    first.acquire("run folder /tmp/first")
    with pytest.raises(TestbedBusy, match=r"another testbed runs .*run folder /tmp/first"):
        second.acquire("run folder /tmp/second")
    assert second.fd is None
    first.release()
    second.acquire("run folder /tmp/second")  # free again
    assert "second" in path.read_text()
    second.release()
    assert path.read_text() == ""


def test_a_testbeds_folder_is_absolute_whatever_it_was_given(tmp_path, monkeypatch):
    """The hosts' daemons are handed paths in it from other working directories:
    `experiments.run --resume results/...` (a relative folder) once left dhclient -6
    without a lease file it could resolve, and the IPv6 testbed never started."""
    from topologies.builder import Testbed
    from topologies.dualhomed import DualHomedTopo

    monkeypatch.chdir(tmp_path)
    tb = Testbed(DualHomedTopo(), log_dir="results/run/work/savi-v6")
    assert tb.dir == tmp_path / "results/run/work/savi-v6" and tb.dir.is_dir()
    assert tb.config_file.is_absolute()
