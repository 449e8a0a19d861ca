"""Integration tests (tests/integration, tests/mptcp, tests/experiments) run real OVS
switches, the real controller and Mininet hosts: they need root and a running Open vSwitch."""

import os
import subprocess

import pytest
from mininet.log import setLogLevel


def pytest_collection_modifyitems(config, items):
    reason = None
    if os.geteuid() != 0:
        reason = "integration tests need root (run: sudo make test)"
    elif subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True).returncode:
        reason = "Open vSwitch is not running (make install starts it)"
    for item in items:
        if any(f"/{room}/" in str(item.fspath) for room in ("integration", "mptcp", "experiments")):
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True, scope="session")
def quiet_mininet():
    setLogLevel("warning")
