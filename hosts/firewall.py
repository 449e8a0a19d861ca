"""The netfilter rules that bring only MPTCP control packets to the agent (NFQUEUE).

Out: what iptables' bpf match finds with the ``control_out`` program of
hosts/bpf/guard.c: our own segments that carry ADD_ADDR, RM_ADDR or MP_PRIO anywhere
among their options (nftables sees only the first MPTCP option, and RM_ADDR follows
DSS), and the segments of a subflow that must carry an option (the program's
``carriers`` map, which the agent updates with one bpf syscall, hosts/guard.py; it takes
the subflow out once the first of them has taken the options and left, never before: a
segment let through sooner would overtake the carrier with a newer timestamp, and the
peer's PAWS check would drop it). In: segments the tc classifier marked
(ADD_ADDR anywhere; MP_JOIN SYNs while enforcing; the segments behind an ADD_ADDR the
agent holds, until it releases their subflow). This kernel's nft has no queue
verdict, so nftables and the classifier mark and iptables-nft queues (platform notes).

``--queue-bypass``: with no agent listening, packets pass, so a dead agent leaves plain
MPTCP. Enforcement itself is the classifier's (it drops, nothing is queued for it).

Copies (never held): handshakes and ADDR_TRUST, logged to NFLOG group COPY_GROUP by the
``copy_in`` and ``copy_out`` chains (hosts/sniffer.py reads them). Incoming after the
classifier (tc ingress comes first: what it drops teaches nothing) and before the
queues, so a copy always precedes the queued packets behind it; outgoing after the
queue's rewrite, as they leave.
"""

from __future__ import annotations

import subprocess

TABLE = "tmptcp"
CHAIN_OUT, CHAIN_IN = "TMPTCP_OUT", "TMPTCP_IN"
MARK_IN = 0x7A02
MARK_INJECTED = 0x7A0F  # segments the agent sends itself: never queued again
QUEUE_OUT, QUEUE_IN = 0, 1
COPY_GROUP = 0x7A  # the NFLOG group of the copies
# Where Linux puts the first MPTCP option: right after the TCP header, after NOP NOP
# TIMESTAMP, or (in a SYN) after MSS, SACK-permitted + timestamp and window scale.
FIRST_OPTION_AT = (20, 32, 40)
COPIED_SUBTYPES = (0x0, 0x1)  # MP_CAPABLE, MP_JOIN; and ADDR_TRUST's (configurable)
# The queues are iptables' and ip6tables' (the same rules in each family's mangle table).
IPTABLES = ("iptables-nft", "ip6tables-nft")


class FirewallError(RuntimeError):
    pass


# Every data segment and ACK Linux sends: NOP NOP TIMESTAMP at 20, then DSS at 32 longer
# than 8 bytes (a 64-bit data ACK, a mapping), so what sits at 40 is inside it.
DATA_LAYOUT = (
    "meta l4proto tcp @th,160,32 0x0101080a @th,256,8 30 @th,264,8 > 8 @th,272,8 & 0xf0 0x20"
)


def copy_rules(addr_trust_subtype: int) -> str:
    """The rules that log a segment whose first MPTCP option is MP_CAPABLE, MP_JOIN or
    ADDR_TRUST (kind 30 at one of FIRST_OPTION_AT, subtype in the high nibble two bytes
    on). IPv6: only TCP right after the fixed header; a segment behind extension
    headers is not copied, so it teaches the agent nothing (fail closed), and while
    enforcing the classifier judges it (docs/trusted-mptcp.md, IPv6).

    A segment in DATA_LAYOUT leaves at the first rule: its first MPTCP option is DSS
    and none of the three rules behind could log it but for DSS bytes at 40 that look
    like an option (a copy the agent would only throw away). On every packet that rule
    reads less than the three do."""
    wanted = ", ".join(f"{w << 4:#04x}" for w in (*COPIED_SUBTYPES, addr_trust_subtype))
    lines = ["        ip6 nexthdr != tcp accept", f"        {DATA_LAYOUT} accept"]
    for at in FIRST_OPTION_AT:
        lines.append(
            f"        meta l4proto tcp @th,{at * 8},8 30 @th,{(at + 2) * 8},8 & 0xf0 "
            f"{{ {wanted} }} log group {COPY_GROUP} accept"
        )
    return "\n".join(lines) + "\n"


def ruleset(addr_trust_subtype: int) -> str:
    copies = copy_rules(addr_trust_subtype)
    return f"""
table inet {TABLE} {{
    chain copy_in {{
        type filter hook input priority -300; policy accept;
{copies}    }}
    chain copy_out {{
        type filter hook postrouting priority 300; policy accept;
        oifname "lo" accept
{copies}    }}
}}
"""


def _queue(num: int) -> list[str]:
    return ["-j", "NFQUEUE", "--queue-num", str(num), "--queue-bypass"]


def iptables_rules(control_out_prog: str) -> list[tuple[str, list[str]]]:
    """(chain, rule) in the mangle table, in order."""
    return [
        (CHAIN_OUT, ["-m", "mark", "--mark", f"{MARK_INJECTED:#x}", "-j", "RETURN"]),
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


def _ipt(tool: str, *args: str, check: bool = True) -> bool:
    return _run([tool, "-t", "mangle", *args], check=check)


def install(control_out_prog: str, addr_trust_subtype: int) -> None:
    remove()
    _run(["nft", "-f", "-"], ruleset(addr_trust_subtype))
    for tool in IPTABLES:
        for chain in (CHAIN_OUT, CHAIN_IN):
            _ipt(tool, "-N", chain)
        for chain, rule in iptables_rules(control_out_prog):
            _ipt(tool, "-A", chain, *rule)
        _ipt(tool, "-A", "OUTPUT", "-j", CHAIN_OUT)
        _ipt(tool, "-A", "INPUT", "-j", CHAIN_IN)


def remove() -> None:
    """Our rules, and the mangle tables if nothing else is in them: iptables-nft leaves
    a table's base chains registered, empty, and every packet would still go through
    them (the kernel path manager measured after the agents would pay for it)."""
    _run(["nft", "delete", "table", "inet", TABLE], check=False)
    for tool in IPTABLES:
        for hook, chain in (("OUTPUT", CHAIN_OUT), ("INPUT", CHAIN_IN)):
            while _ipt(tool, "-D", hook, "-j", chain, check=False):
                pass
            _ipt(tool, "-F", chain, check=False)
            _ipt(tool, "-X", chain, check=False)
        listed = subprocess.run(
            [tool, "-t", "mangle", "-S"], capture_output=True, text=True, timeout=20
        )
        rules = listed.stdout.splitlines()
        if listed.returncode == 0 and all(
            r.startswith("-P ") and r.endswith(" ACCEPT") for r in rules
        ):
            family = "ip6" if tool.startswith("ip6") else "ip"
            _run(["nft", "delete", "table", family, "mangle"], check=False)
