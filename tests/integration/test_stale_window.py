"""``TMPTCP_STALE_WINDOW_FILTER=off``: a testbed without the hosts' stale-window filter
(the filter itself: tests/unit/test_stale_window.py; on a testbed's MPTCP endpoints:
tests/integration/test_dualhomed.py)."""

import pytest

from tests.integration.test_dualhomed import _window_filtered
from topologies.builder import Testbed, TestbedError, offload_mode
from topologies.dualhomed import DualHomedTopo


def test_the_stale_window_filter_can_be_left_out(monkeypatch, tmp_path):
    """``TMPTCP_STALE_WINDOW_FILTER=off`` shows the kernel's own behaviour: no host
    interface gets the filter; a value other than on or off is refused."""
    monkeypatch.setenv("TMPTCP_STALE_WINDOW_FILTER", "maybe")
    with pytest.raises(TestbedError, match="TMPTCP_STALE_WINDOW_FILTER is on or off"):
        offload_mode()
    with pytest.raises(TestbedError, match="TMPTCP_STALE_WINDOW_FILTER is on or off"):
        with Testbed(DualHomedTopo(), log_dir=str(tmp_path / "refused")):
            pass
    assert list((tmp_path / "refused").iterdir()) == []  # refused before anything ran
    monkeypatch.setenv("TMPTCP_STALE_WINDOW_FILTER", "off")
    assert "stale-window ACK filter off" in offload_mode()
    with Testbed(DualHomedTopo(), log_dir=str(tmp_path)) as bare:
        assert bare.window_filter is None
        assert all(_window_filtered(host) == {False} for host in bare.net.hosts)
