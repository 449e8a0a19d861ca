"""The netfilter rules that bring only MPTCP control packets to the agent (NFQUEUE).

Out: our own segments that carry ADD_ADDR, RM_ADDR or MP_PRIO anywhere among their
options (iptables' bpf match runs the ``control_out`` program of hosts/bpf/guard.c:
nftables sees only the first MPTCP option, and RM_ADDR follows DSS), and the one next
packets of a subflow that must carry an option (an nft set of 4-tuples; the agent takes
the subflow out of the set once the first of them has taken the options, so no later
segment of that subflow overtakes it with a newer timestamp: the peer's PAWS check would
drop the carrier). In: segments the tc classifier marked
(ADD_ADDR anywhere; MP_JOIN SYNs while enforcing). This kernel's nft has no queue
verdict, so nftables and the classifier mark and iptables-nft queues (platform notes).

``--queue-bypass``: with no agent listening, packets pass, so a dead agent leaves plain
MPTCP. Enforcement itself is the classifier's (it drops, nothing is queued for it).
"""

from __future__ import annotations

import subprocess

TABLE = "tmptcp"
CHAIN_OUT, CHAIN_IN = "TMPTCP_OUT", "TMPTCP_IN"
MARK_OUT, MARK_IN = 0x7A01, 0x7A02
MARK_INJECTED = 0x7A0F  # segments the agent sends itself: never queued again
QUEUE_OUT, QUEUE_IN = 0, 1
FOUR = "ip saddr . tcp sport . ip daddr . tcp dport"
SET_TYPE = "ipv4_addr . inet_service . ipv4_addr . inet_service"


class FirewallError(RuntimeError):
    pass


def ruleset() -> str:
    return f"""
table inet {TABLE} {{
    set carriers {{
        type {SET_TYPE}
    }}
    chain out {{
        type filter hook output priority -200; policy accept;
        meta mark {MARK_INJECTED:#x} accept
        {FOUR} @carriers meta mark set {MARK_OUT:#x}
    }}
}}
"""


def _queue(num: int) -> list[str]:
    return ["-j", "NFQUEUE", "--queue-num", str(num), "--queue-bypass"]


def iptables_rules(control_out_prog: str) -> list[tuple[str, list[str]]]:
    """(chain, rule) in the mangle table, in order."""
    return [
        (CHAIN_OUT, ["-m", "mark", "--mark", f"{MARK_INJECTED:#x}", "-j", "RETURN"]),
        (CHAIN_OUT, ["-m", "mark", "--mark", f"{MARK_OUT:#x}", *_queue(QUEUE_OUT)]),
        (
            CHAIN_OUT,
            ["-p", "tcp", "-m", "bpf", "--object-pinned", control_out_prog, *_queue(QUEUE_OUT)],
        ),
        (CHAIN_IN, ["-m", "mark", "--mark", f"{MARK_IN:#x}", *_queue(QUEUE_IN)]),
    ]


def _run(cmd: list[str], stdin: str | None = None, check: bool = True) -> bool:
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=20)
    if check and r.returncode:
        raise FirewallError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.returncode == 0


def _ipt(*args: str, check: bool = True) -> bool:
    return _run(["iptables-nft", "-t", "mangle", *args], check=check)


def install(control_out_prog: str) -> None:
    remove()
    _run(["nft", "-f", "-"], ruleset())
    for chain in (CHAIN_OUT, CHAIN_IN):
        _ipt("-N", chain)
    for chain, rule in iptables_rules(control_out_prog):
        _ipt("-A", chain, *rule)
    _ipt("-A", "OUTPUT", "-j", CHAIN_OUT)
    _ipt("-A", "INPUT", "-j", CHAIN_IN)


def remove() -> None:
    _run(["nft", "delete", "table", "inet", TABLE], check=False)
    for hook, chain in (("OUTPUT", CHAIN_OUT), ("INPUT", CHAIN_IN)):
        while _ipt("-D", hook, "-j", chain, check=False):
            pass
        _ipt("-F", chain, check=False)
        _ipt("-X", chain, check=False)


def set_elements(name: str, elements: set[tuple[str, int, str, int]], current: set) -> None:
    """Make the nft set ``name`` hold exactly ``elements`` (IPv4 4-tuples)."""
    add, gone = elements - current, current - elements
    for op, items in (("add", add), ("delete", gone)):
        items = [e for e in items if ":" not in e[0] and ":" not in e[2]]
        if items:
            body = ", ".join(f"{a} . {b} . {c} . {d}" for a, b, c, d in items)
            _run(["nft", op, "element", "inet", TABLE, name, f"{{ {body} }}"], check=False)
