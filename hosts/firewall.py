"""The netfilter rules that bring only MPTCP control packets to the agent (NFQUEUE).

nftables marks them (it can match the first MPTCP option's subtype and sets of subflow
4-tuples) and iptables-nft queues the marks, because this kernel's nft has no queue
verdict (platform notes). ``--queue-bypass``: with no agent listening, packets pass, so a
dead agent leaves plain MPTCP. Data segments never match: only packets whose first MPTCP
option is ADD_ADDR, the one next packet of a subflow that must carry an ADDR_TRUST (the
rule deletes the subflow from its set in the packet path), and in enforcement mode short
pure ACKs of untrusted subflows are queued.
"""

from __future__ import annotations

import subprocess

TABLE = "tmptcp"
MARK_OUT, MARK_IN = 0x7A01, 0x7A02
MARK_INJECTED = 0x7A0F  # segments the agent sends itself: never queued again
QUEUE_OUT, QUEUE_IN = 0, 1
PURE_ACK = "tcp flags & (syn | fin | rst) == 0 ip length < 100"
FOUR = "ip saddr . tcp sport . ip daddr . tcp dport"
SET_TYPE = "ipv4_addr . inet_service . ipv4_addr . inet_service"


class FirewallError(RuntimeError):
    pass


def ruleset() -> str:
    return f"""
table inet {TABLE} {{
    set carriers {{
        type {SET_TYPE}
        flags dynamic
    }}
    set guarded {{
        type {SET_TYPE}
    }}
    chain out {{
        type filter hook output priority -200; policy accept;
        meta mark {MARK_INJECTED:#x} accept
        tcp option mptcp subtype 3 meta mark set {MARK_OUT:#x}
        {FOUR} @carriers delete @carriers {{ {FOUR} }} meta mark set {MARK_OUT:#x}
    }}
    chain in {{
        type filter hook input priority -200; policy accept;
        tcp option mptcp subtype 3 meta mark set {MARK_IN:#x}
        {FOUR} @guarded {PURE_ACK} meta mark set {MARK_IN:#x}
    }}
}}
"""


def _iptables_rules() -> list[tuple[str, list[str]]]:
    """(chain, rule) in the mangle table."""
    return [
        (chain, ["-m", "mark", "--mark", f"{mark:#x}", "-j", "NFQUEUE",
                 "--queue-num", str(queue), "--queue-bypass"])
        for chain, mark, queue in (("OUTPUT", MARK_OUT, QUEUE_OUT), ("INPUT", MARK_IN, QUEUE_IN))
    ]  # fmt: skip


def _run(cmd: list[str], stdin: str | None = None, check: bool = True) -> bool:
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=20)
    if check and r.returncode:
        raise FirewallError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.returncode == 0


def install() -> None:
    remove()
    _run(["nft", "-f", "-"], ruleset())
    for chain, rule in _iptables_rules():
        _run(["iptables-nft", "-t", "mangle", "-A", chain, *rule])


def remove() -> None:
    _run(["nft", "delete", "table", "inet", TABLE], check=False)
    for chain, rule in _iptables_rules():
        while _run(["iptables-nft", "-t", "mangle", "-D", chain, *rule], check=False):
            pass


def set_elements(name: str, elements: set[tuple[str, int, str, int]], current: set) -> None:
    """Make the nft set ``name`` hold exactly ``elements`` (IPv4 4-tuples)."""
    add, gone = elements - current, current - elements
    for op, items in (("add", add), ("delete", gone)):
        items = [e for e in items if ":" not in e[0] and ":" not in e[2]]
        if items:
            body = ", ".join(f"{a} . {b} . {c} . {d}" for a, b, c, d in items)
            _run(["nft", op, "element", "inet", TABLE, name, f"{{ {body} }}"], check=False)
