"""A program that builds a testbed, stopped with SIGTERM (`kill`, `timeout`, a CI runner
cancelling its job) while the testbed runs, takes down everything it started, as it
does on Ctrl-C: the switches, the controller, the agents and helpers, the machine's
lock. (Python's default ends it at once and leaves them all running.)"""

import signal
import subprocess
import sys

import pytest

from experiments.harness import REPO, wait_until
from topologies.builder import LOCK_PATH, MachineLock

COMMANDS = {
    # The agents' cost on data: a testbed, the agents and their kernel hooks, transfers.
    "bench": ["experiments.bench", "--quick", "--only", "hook_cost"],
    "run": ["experiments.run", "--config", "short", "--convergence", "0"],
}


# What a testbed program starts in its hosts (one testbed at a time: any of these left is
# the stopped program's).
HELPERS = "hosts.agent|experiments.(hooks_only|transfer|attacks|forger)"


def _ours(out, but: int | None = None) -> list[str]:
    """Processes of this run still alive but ``but``: those naming its folder (the
    controller, tcpdump) and the helpers in its hosts."""
    found = ""
    for pattern in (str(out), HELPERS):
        found += subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    return [
        line for line in found.splitlines() if "pgrep" not in line and line.split()[0] != str(but)
    ]


def _bridges() -> list[str]:
    return subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True).stdout.split()


def _transferring() -> bool:
    found = subprocess.run(["pgrep", "-f", "experiments.transfer (client|server)"])
    return found.returncode == 0


@pytest.mark.parametrize("moment", ["starting", "transferring"])
@pytest.mark.parametrize("program", sorted(COMMANDS))
def test_sigterm_takes_the_testbed_down(tmp_path, program, moment):
    """Stopped while its testbed starts (the main thread then often sits in a node's
    shell, reading a command's output) or while a transfer runs."""
    out = tmp_path / program
    proc = subprocess.Popen(
        [sys.executable, "-m", *COMMANDS[program], "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Up: it holds the machine's lock, its switches exist and its helpers run.
        wait_until(
            lambda: LOCK_PATH.exists()
            and LOCK_PATH.read_text().startswith(f"pid {proc.pid},")
            and "s1" in _bridges()
            and _ours(out, but=proc.pid)
            and (moment == "starting" or _transferring()),
            120,
            f"{program}'s testbed to be up" + (" and transferring" if moment != "starting" else ""),
            interval=0.01,
        )
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopping (SIGTERM)" in err
    assert _ours(out) == [], _ours(out)
    assert "s1" not in _bridges()
    lock = MachineLock()
    lock.acquire("the test, after the program stopped")  # free again (raises if held)
    lock.release()
