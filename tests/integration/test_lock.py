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
