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
