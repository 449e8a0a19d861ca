"""Helpers for the Trusted MPTCP integration tests: transfers, TPBT polling, counters."""

from __future__ import annotations

import time

from experiments import harness
from experiments.harness import Transfer, pin_neighbours, wait_until  # noqa: F401
from topologies.dualhomed import A_TRUSTED, A_UNTRUSTED, B_TRUSTED, B_UNTRUSTED

EXPECTED = {
    "a": {
        (A_TRUSTED, B_TRUSTED): (True, True),
        (A_TRUSTED, B_UNTRUSTED): (True, False),
        (A_UNTRUSTED, B_TRUSTED): (False, True),
        (A_UNTRUSTED, B_UNTRUSTED): (False, False),
    },
    "b": {
        (B_TRUSTED, A_TRUSTED): (True, True),
        (B_TRUSTED, A_UNTRUSTED): (True, False),
        (B_UNTRUSTED, A_TRUSTED): (False, True),
        (B_UNTRUSTED, A_UNTRUSTED): (False, False),
    },
}


def table(tb, host: str) -> dict:
    try:
        state = tb.tpbt(host)
    except (OSError, ValueError):
        return {}
    return {(e["src"], e["dst"]): (e["sip_trust"], e["dip_trust"]) for e in state["entries"]}


def wait_for_table(tb, host: str, expected: dict, timeout: float = 15) -> dict:
    return wait_until(
        lambda: table(tb, host) == expected and table(tb, host),
        timeout,
        f"{host}'s TPBT to become {expected}; last {table(tb, host)}",
    )


def mib(host, name: str) -> int:
    return harness.mib(host)[name]


def managed_transfer(
    tb, expected: dict | None = None, attempts: int = 4, wait: float = 6, **kw
) -> Transfer:
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
