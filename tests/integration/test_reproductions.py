"""The reductions in tools/ of faults found below the testbed (docs/line-rate.md):
tools/ovs-tso/repro.sh (OVS 3.1 re-cutting TSO packets for a router) and
tools/mptcp-stall/repro.sh (multi-subflow MPTCP stalling under OVS's userspace TSO, and
its capture replay, tools/mptcp-stall/window_replay.py). Each builds its own namespaces,
runs in either OVS mode, measures what it says it measures and leaves nothing behind.
Whether the fault shows is OVS's and the kernel's business and is not asserted."""

import os
import re
import subprocess

import pytest

from tests.integration.tools import REPO

STALL_SCRIPT = REPO / "tools" / "mptcp-stall" / "repro.sh"
OVS_TSO_SCRIPT = REPO / "tools" / "ovs-tso" / "repro.sh"
OVS_TSO_RUN = re.compile(
    r"router MTU (1500|1540), (tcp|mptcp): ([\d.]+) Mbit/s, router IpFragFails \+\d+"
)
RUN = re.compile(
    r"run (\d+): ([\d.]+) Mbit/s, subflows (\d+), NoDSSInWindow \+(\d+), "
    r"MPTCPRetrans \+(-?\d+), OVS drops \+(-?\d+)"
)


def repro(script=STALL_SCRIPT, **settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": "python3", **{k: str(v) for k, v in settings.items()}}
    return subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=180
    )


def leftovers(prefix: str = "mpstall") -> list[str]:
    """Namespaces, bridges and links of a reproduction still on the machine."""
    found = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True).stdout
    found += subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if prefix in line]


def test_the_tso_recut_reduction_carries_tcp_and_mptcp_through_its_router():
    r = repro(OVS_TSO_SCRIPT, SECONDS_PER_RUN=1)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = [OVS_TSO_RUN.fullmatch(line) for line in r.stdout.splitlines()]
    assert [(m[1], m[2]) for m in runs if m] == [
        ("1500", "tcp"),
        ("1500", "mptcp"),
        ("1540", "tcp"),
        ("1540", "mptcp"),
    ], r.stdout + r.stderr
    # Whatever the mode, with the router's headroom both protocols get through.
    assert all(float(m[3]) > 10 for m in runs if m and m[1] == "1540"), r.stdout
    assert leftovers("tsorepro") == []


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


def test_a_shaped_sender_is_held_to_its_rate():
    """RATE shapes each of a's paths (tc tbf): the transfer stays under their sum."""
    r = repro(MODE="veth", PATHS=2, RUNS=1, SECONDS_PER_RUN=1, RATE="100mbit")
    assert r.returncode == 0, r.stdout + r.stderr
    (run,) = [RUN.fullmatch(line) for line in r.stdout.splitlines() if line.startswith("run ")]
    assert run and int(run[3]) == 2, r.stdout
    assert 0 < float(run[2]) < 2 * 100 * 1.1, r.stdout
    assert "rate per path 100mbit" in r.stdout
    assert leftovers() == []


CAPTURE_LINE = re.compile(
    r"capture of run (\d+): tcpdump dropped (\d+); replay \(to the end of the shortest capture\):"
    r" (\d+) new data segments; (\d+) ended"
    r" past every edge the receiver had announced \(by up to \d+ bytes\), (\d+) of them within"
    r" the edge the sender computes from data ACK \+ subflow window; \d+ ACKs put that edge"
    r" ahead \(by up to \d+ bytes\); (kept in .+|removed)"
)


def test_a_captured_run_is_replayed_and_kept_only_if_it_stalled(tmp_path):
    folder = tmp_path / "captures"
    r = repro(PATHS=2, RUNS=2, SECONDS_PER_RUN=0.5, CAPTURE=folder)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = [RUN.fullmatch(line) for line in r.stdout.splitlines() if line.startswith("run ")]
    captures = [CAPTURE_LINE.fullmatch(line) for line in r.stdout.splitlines() if "capture" in line]
    assert len(runs) == 2 and all(runs) and len(captures) == 2 and all(captures), r.stdout
    for run, cap in zip(runs, captures, strict=True):
        assert run[1] == cap[1]
        stalled = int(run[4]) > 0
        # The replay read the sender's side of the transfer from the capture.
        assert int(cap[3]) > 0, r.stdout
        # The receiver drops only data past the edge it announced: a complete capture of
        # a run it dropped data in shows the sender sending past that edge.
        if stalled and int(cap[2]) == 0:
            assert int(cap[4]) > 0, r.stdout
        kept = folder / f"run-{run[1]}"
        assert kept.is_dir() == stalled and (cap[6] == "removed") != stalled, r.stdout
        if stalled:
            assert len(list(kept.glob("a*.pcap"))) == 2
    assert leftovers() == []
    assert subprocess.run(["pgrep", "-f", f"tcpdump .*{folder}"]).returncode == 1


def test_with_the_filter_no_ack_teaches_the_sender_an_edge_never_announced(tmp_path):
    """The testbed's work-around (hosts/bpf/stale_window.c on b's egress), checked by
    its mechanism, whatever the rate: in a complete capture at the sender, no ACK of b
    puts the edge a's kernel computes (data ACK + the window TCP kept) ahead of every
    edge b announced, so a never sends past b's window. A 4-MiB receive buffer makes b's
    window shrink (without the filter such ACKs came by the dozen in every run)."""
    folder = tmp_path / "captures"
    r = repro(PATHS=2, RUNS=2, SECONDS_PER_RUN=0.5, CAPTURE=folder, RMEM_MAX=4194304, FILTER="on")
    assert r.returncode == 0, r.stdout + r.stderr
    captures = [CAPTURE_LINE.fullmatch(line) for line in r.stdout.splitlines() if "capture" in line]
    assert len(captures) == 2 and all(captures), r.stdout
    for cap in captures:
        assert int(cap[3]) > 0, r.stdout  # the replay read the transfer
        assert "; 0 ACKs put that edge ahead" in cap[0], r.stdout
        assert int(cap[4]) == 0, r.stdout  # nothing sent past b's window
    assert "stale-window filter on" in r.stdout
    assert leftovers() == []


def test_a_capture_folder_that_cannot_be_written_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = repro(CAPTURE=blocker / "sub", RUNS=1)
    assert r.returncode == 2 and "cannot be written" in r.stderr, r.stdout + r.stderr
    assert leftovers() == []


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"MODE": "kernel"}, "MODE is ovs or veth"),
        ({"PATHS": "0"}, "PATHS is 1 to 8"),
        ({"RUNS": "many"}, "RUNS is a positive number"),
        ({"SECONDS_PER_RUN": "-1"}, "SECONDS_PER_RUN is a number"),
        ({"RMEM_MAX": "4M"}, "RMEM_MAX is a number of bytes"),
        ({"RATE": "fast"}, "RATE is a rate"),
        ({"FILTER": "yes"}, "FILTER is on or off"),
    ],
)
def test_a_bad_setting_is_refused_before_anything_is_built(setting, message):
    r = repro(**setting)
    assert r.returncode == 2 and message in r.stderr, r.stdout + r.stderr
    assert "run 1" not in r.stdout
    assert leftovers() == []


def test_the_tso_recut_reduction_refuses_a_bad_duration():
    r = repro(OVS_TSO_SCRIPT, SECONDS_PER_RUN="1.5")
    assert r.returncode == 2 and "SECONDS_PER_RUN is a whole number" in r.stderr, r.stderr
    assert "router MTU" not in r.stdout
    assert leftovers("tsorepro") == []


@pytest.mark.parametrize("script", [STALL_SCRIPT, OVS_TSO_SCRIPT], ids=["stall", "recut"])
def test_a_reduction_refuses_to_run_beside_a_testbed_and_leaves_its_lock_alone(script):
    """Both build namespaces and a bridge of their own: beside a running testbed (the
    machine's lock held) they refuse, name the holder and leave the lock file as it was
    (it names the holder for the next one refused); nothing is built."""
    from topologies.builder import LOCK_PATH, MachineLock

    lock = MachineLock()
    lock.acquire("a test holding the lock")
    try:
        note = LOCK_PATH.read_text()
        r = repro(script, RUNS=1)
        assert r.returncode == 2 and "a testbed is running" in r.stderr, r.stdout + r.stderr
        assert "a test holding the lock" in r.stderr
        assert LOCK_PATH.read_text() == note
    finally:
        lock.release()
    assert leftovers() == [] and leftovers("tsorepro") == []
