"""Helpers for the Trusted MPTCP integration tests: transfers, TPBT polling, counters."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.integration.tools import REPO, wait_until
from topologies.dualhomed import A_TRUSTED, A_UNTRUSTED, B_TRUSTED, B_UNTRUSTED

EXPECTED = {
    "a": {(A_TRUSTED, B_TRUSTED): (True, True), (A_TRUSTED, B_UNTRUSTED): (True, False),
          (A_UNTRUSTED, B_TRUSTED): (False, True), (A_UNTRUSTED, B_UNTRUSTED): (False, False)},
    "b": {(B_TRUSTED, A_TRUSTED): (True, True), (B_TRUSTED, A_UNTRUSTED): (True, False),
          (B_UNTRUSTED, A_TRUSTED): (False, True), (B_UNTRUSTED, A_UNTRUSTED): (False, False)},
}  # fmt: skip


class Transfer:
    """experiments.transfer: server in b, client in a, started together."""

    def __init__(self, tb, nbytes: int = 20_000_000, to: str = B_TRUSTED,
                 bind: str | None = None, pause: float = 0.5, port: int = 5201,
                 seconds: float | None = None, rate_mbps: float | None = None,
                 idle: float = 0.0):  # fmt: skip
        self.server = tb.net["b"].popen(
            [sys.executable, "-m", "experiments.transfer", "server", "--port", str(port)],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        b = tb.net["b"]
        wait_until(lambda: f":{port}" in b.cmd(f"ss -Hltn sport = :{port}"), 10,
                   f"the transfer server to listen on {port}")  # fmt: skip
        cmd = [sys.executable, "-m", "experiments.transfer", "client", "--to", to, "--port",
               str(port), "--bytes", str(nbytes), "--pause", str(pause)]  # fmt: skip
        if bind:
            cmd += ["--bind", bind]
        if seconds:
            cmd += ["--seconds", str(seconds)]
        if rate_mbps:
            cmd += ["--rate-mbps", str(rate_mbps)]
        if idle:
            cmd += ["--idle", str(idle)]
        self.client = tb.net["a"].popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)

    def results(self, timeout: float = 120) -> tuple[dict, dict]:
        out_c, _ = self.client.communicate(timeout=timeout)
        out_s, _ = self.server.communicate(timeout=timeout)
        client, server = json.loads(out_c), json.loads(out_s)
        for side, result in (("client", client), ("server", server)):
            assert "error" not in result, f"transfer {side} failed: {result['error']}"
        return client, server


def table(tb, host: str) -> dict:
    try:
        state = tb.tpbt(host)
    except (OSError, ValueError):
        return {}
    return {(e["src"], e["dst"]): (e["sip_trust"], e["dip_trust"]) for e in state["entries"]}


def wait_for_table(tb, host: str, expected: dict, timeout: float = 15) -> dict:
    return wait_until(lambda: table(tb, host) == expected and table(tb, host), timeout,
                      f"{host}'s TPBT to become {expected}; last {table(tb, host)}")  # fmt: skip


def mib(host, name: str) -> int:
    out = host.cmd(f"nstat -az {name}")
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == name:
            return int(parts[1])
    raise AssertionError(f"no MIB counter {name}: {out}")


def managed_transfer(tb, expected: dict | None = None, attempts: int = 4, wait: float = 6,
                     **kw) -> Transfer:  # fmt: skip
    """A Transfer whose connection a's agent manages (its TPBT reaches ``expected``).

    Linux 6.18 sometimes leaves a new MPTCP connection not fully established for seconds
    (it refuses ANNOUNCE and SUBFLOW_CREATE; docs/trusted-mptcp.md). Such a connection
    is abandoned and a new one opened, at most ``attempts`` times; each retry is printed.
    """
    expected = expected or EXPECTED["a"]
    port = kw.pop("port", 5201)
    for attempt in range(attempts):
        xfer = Transfer(tb, port=port + 10 * attempt, **kw)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if table(tb, "a") == expected:
                return xfer
            time.sleep(0.1)
        print(f"attempt {attempt + 1}: a's TPBT {table(tb, 'a')}; opening a new connection")
        for p in (xfer.client, xfer.server):
            p.kill()
            p.wait(10)
    raise AssertionError(f"no managed connection in {attempts} attempts")
