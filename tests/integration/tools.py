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
        self.proc = host.popen(
            ["tcpdump", "-Z", "root", "--immediate-mode", "-i", iface, "-U", "-n", "-w", str(path), bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        # tcpdump says "listening on" once its socket is open; only then is nothing missed.
        line = ""
        deadline = time.monotonic() + 10
        while "listening on" not in line and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 1)
            line = self.proc.stderr.readline().decode() if ready else ""
            if ready and not line:
                break  # tcpdump exited
        if "listening on" not in line:
            self.proc.kill()
            raise AssertionError(f"tcpdump did not start in {host.name}: {line!r}")

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
