"""tools/mptcp-stall/repro.sh, the reduced reproduction of the MPTCP stall under OVS's
userspace TSO (docs/line-rate.md): it builds its own two hosts, measures what it says it
measures (one subflow per path, the receiver's counters) and leaves nothing behind. Whether
a run stalls is the kernel's business and not asserted."""

import os
import re
import subprocess

import pytest

from tests.integration.tools import REPO

SCRIPT = REPO / "tools" / "mptcp-stall" / "repro.sh"
RUN = re.compile(
    r"run (\d+): ([\d.]+) Mbit/s, subflows (\d+), NoDSSInWindow \+(\d+), "
    r"MPTCPRetrans \+(-?\d+), OVS drops \+(-?\d+)"
)


def repro(**settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": "python3", **{k: str(v) for k, v in settings.items()}}
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )


def leftovers() -> list[str]:
    """Namespaces, bridges and links of the reproduction still on the machine."""
    found = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True).stdout
    found += subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "mpstall" in line]


@pytest.mark.parametrize(("mode", "rmem_max"), [("ovs", ""), ("veth", "33554432")])
def test_each_run_reports_its_subflows_and_the_receivers_counters(mode, rmem_max):
    r = repro(MODE=mode, PATHS=2, RUNS=2, SECONDS_PER_RUN=0.5, RMEM_MAX=rmem_max)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = [RUN.fullmatch(line) for line in r.stdout.splitlines() if line.startswith("run ")]
    assert len(runs) == 2 and all(runs), r.stdout
    for m in runs:
        assert float(m[2]) > 0  # b received the transfer
        assert int(m[3]) == 2  # the kernel's path manager joined the second path
        if mode == "veth":
            assert int(m[6]) == 0  # no switch, nothing for OVS to drop
    stalled = sum(int(m[4]) > 0 for m in runs)
    assert f"{stalled} of 2 runs dropped data beyond the receiver's window ({mode}, 2 paths" in (
        r.stdout
    )
    if rmem_max:  # the hosts' receive-buffer maximum was set as asked
        assert re.search(rf"tcp_rmem \d+ \d+ {rmem_max}\)$", r.stdout.strip()), r.stdout
    assert leftovers() == []


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"MODE": "kernel"}, "MODE is ovs or veth"),
        ({"PATHS": "0"}, "PATHS is 1 to 8"),
        ({"RUNS": "many"}, "RUNS is a positive number"),
        ({"SECONDS_PER_RUN": "-1"}, "SECONDS_PER_RUN is a number"),
        ({"RMEM_MAX": "4M"}, "RMEM_MAX is a number of bytes"),
    ],
)
def test_a_bad_setting_is_refused_before_anything_is_built(setting, message):
    r = repro(**setting)
    assert r.returncode == 2 and message in r.stderr, r.stdout + r.stderr
    assert "run 1" not in r.stdout
    assert leftovers() == []
