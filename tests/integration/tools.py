"""Helpers for integration tests: raw packets from inside hosts, captures at victims."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def send_frames(host, iface: str, scapy_expr: str, count: int = 1) -> None:
    """Send ``count`` copies of a scapy frame (an expression, e.g. ``Ether()/IP()``) from
    ``host``: raw packets on the wire, whatever the host's own addresses are."""
    code = (
        "from scapy.all import *; import sys\n"
        f"sendp({scapy_expr}, iface={iface!r}, count={count}, verbose=False)\n"
    )
    r = host.popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)  # fmt: skip
    out, err = r.communicate(timeout=60)
    assert r.returncode == 0, err.decode()


class Capture:
    """tcpdump in a host, started before and read after the packets of interest."""

    def __init__(self, host, iface: str, bpf: str, path: Path):
        self.host, self.path = host, path
        # One failed start was seen in CI (tcpdump gone before printing anything); try
        # again before calling the capture broken, and say how it ended.
        for _attempt in range(3):
            self.proc, line = self._start(iface, bpf)
            if "listening on" in line:
                return
            self.proc.kill()
            self.proc.wait(10)
        raise AssertionError(f"tcpdump did not start in {host.name}: {line!r}, "
                             f"exit status {self.proc.returncode}")  # fmt: skip

    def _start(self, iface: str, bpf: str):
        proc = self.host.popen(
            ["tcpdump", "-Z", "root", "--immediate-mode", "-i", iface, "-U", "-n", "-w",
             str(self.path), bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        # tcpdump says "listening on" once its socket is open; only then is nothing missed.
        line = ""
        deadline = time.monotonic() + 10
        while "listening on" not in line and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 1)
            line = proc.stderr.readline().decode() if ready else ""
            if ready and not line:
                break  # tcpdump exited
        return proc, line

    def stop(self) -> None:
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(10)

    def lines(self, bpf: str = "") -> list[str]:
        """tcpdump's decoding of the captured packets (with link-layer headers)."""
        r = subprocess.run(["tcpdump", "-e", "-n", "-v", "-r", str(self.path),
                            *([bpf] if bpf else [])],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
        return [line for line in r.stdout.splitlines() if line.strip() and not line[0].isspace()]

    def count(self, bpf: str = "") -> int:
        return len(self.lines(bpf))


def stat(tb, port: int, field: str, dpid: int = 1) -> int:
    for row in tb.get("/savi/stats") or []:
        if (row["dpid"], row["port"]) == (dpid, port):
            return row[field]
    return 0


def wait_until(predicate, timeout: float = 10, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def bindings(tb, **where) -> list[dict]:
    return [b for b in tb.get("/savi/bindings") or [] if all(b[k] == v for k, v in where.items())]
