"""A second testbed on the same machine is refused at once and leaves the first alone."""

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.integration.tools import REPO
from topologies.builder import Testbed
from topologies.single import SingleSwitchTopo

SECOND = """
from topologies.builder import Testbed, TestbedBusy
from topologies.single import SingleSwitchTopo
try:
    with Testbed(SingleSwitchTopo(hosts=2)):
        print("started")
except TestbedBusy as e:
    print(e)
"""


def run_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("savi-testbed-*"))


def test_a_second_testbed_is_refused_while_the_first_keeps_working(tmp_path):
    folders_before = run_folders()
    with Testbed(SingleSwitchTopo(hosts=2), log_dir=str(tmp_path / "first")) as tb:
        h1, h2 = tb.net["h1"], tb.net["h2"]
        assert ", 0% packet loss" in h1.cmd(f"ping -c1 -W2 {h2.IP()}")
        r = subprocess.run(
            [sys.executable, "-c", SECOND], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert "another testbed runs on this machine" in r.stdout, r.stdout + r.stderr
        assert str(tmp_path / "first") in r.stdout  # it names the running one
        assert "started" not in r.stdout
        # The refused one made a temporary run folder and took it away again.
        assert run_folders() == folders_before
        # The first testbed's switches, management network and traffic are untouched.
        assert ", 0% packet loss" in h1.cmd(f"ping -c1 -W2 {h2.IP()}")
        assert tb.get("/savi/stats") is not None


class ManagedTopo(SingleSwitchTopo):
    def management_hosts(self) -> list[str]:
        return ["h1"]


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_a_dead_runs_management_link_does_not_stop_the_next_testbed(tmp_path):
    """A run killed while its testbed starts may leave its management veth pair in the
    machine's namespace; the next run (holding the machine's lock, so that pair is no
    one's) takes it away instead of failing on the name, and leaves none itself."""
    subprocess.run(
        ["ip", "link", "add", "mg2-h1", "type", "veth", "peer", "name", "h1-mgmt"], check=True
    )
    try:
        with Testbed(ManagedTopo(hosts=2), log_dir=str(tmp_path / "tb")) as tb:
            assert "mg2-h1" in _links()
            assert "h1-mgmt" in tb.net["h1"].cmd("ip -o link")  # the new pair, in place
            assert "h1-mgmt" not in _links().replace("mg2-h1@h1-mgmt", "")
        left = _links()  # what the stopped testbed left, read before our own clean-up
    finally:
        subprocess.run(["ip", "link", "del", "mg2-h1"], capture_output=True, check=False)
    assert "mg2-h1" not in left and "h1-mgmt" not in left
