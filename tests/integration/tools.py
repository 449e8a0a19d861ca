"""Helpers for integration tests: raw packets from inside hosts, captures at victims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from experiments.harness import Capture, wait_until  # noqa: F401  (re-exported for tests)

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


def stat(tb, port: int, field: str, dpid: int = 1) -> int:
    for row in tb.get("/savi/stats") or []:
        if (row["dpid"], row["port"]) == (dpid, port):
            return row[field]
    return 0


def bindings(tb, **where) -> list[dict]:
    return [b for b in tb.get("/savi/bindings") or [] if all(b[k] == v for k, v in where.items())]
