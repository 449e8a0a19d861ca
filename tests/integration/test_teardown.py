"""A testbed's stop takes down what runs in its hosts, even what no one kept a handle to:
Mininet's ``popen`` detaches a process from its host's shell, so a program stopped
while it started one (SIGTERM between the fork and its bookkeeping) left it running."""

import subprocess

from tests.integration.tools import wait_until
from topologies.builder import Testbed, _netns_inode
from topologies.single import SingleSwitchTopo


def test_processes_left_in_hosts_are_killed_and_the_machines_are_not(tmp_path):
    outside = subprocess.Popen(["sleep", "300"])  # in the root namespace: not the testbed's
    try:
        with Testbed(SingleSwitchTopo(hosts=2), log_dir=str(tmp_path / "tb")) as tb:
            hosts = [tb.net[h] for h in ("h1", "h2")]
            strays = [h.popen(["sleep", "300"]) for h in hosts]
            # (mnexec moves each into its host's namespace after the fork)
            wait_until(
                lambda: all(
                    _netns_inode(p.pid) == _netns_inode(h.pid)
                    for h, p in zip(hosts, strays, strict=True)
                ),
                10,
                "the processes to enter their hosts' namespaces",
            )
            # Detached like every popen: the host's shell is not their parent.
            assert all(p.poll() is None for p in strays)
        for p in strays:
            assert p.wait(timeout=10) == -9  # killed at the stop, by PID
        assert outside.poll() is None
    finally:
        outside.kill()
        outside.wait(10)
