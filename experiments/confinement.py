"""Where the legitimate hosts' MPTCP control options travelled: per option subtype and
per phase, each packet labelled trusted or not from the TPBT state when it was sent.

Plain logic over decoded packets (experiments.trial reads them from the captures with
tshark); no testbed. Like is compared with like:

- per *category*: the kernel's ADD_ADDR, its echo, RM_ADDR and MP_PRIO; the extension's
  ADDR_TRUST, its echo and the withdrawal; anything else (MP_FASTCLOSE, MP_FAIL,
  MP_TCPRST, unknown subtypes) as ``other``. DSS is data, not control; MP_CAPABLE and
  MP_JOIN are counted apart as handshakes;
- per *phase*: ``before`` a trusted subflow of the connection was up in the sender's
  TPBT, ``after`` it;
- a packet is *on a trusted subflow* when its sender's TPBT said so at the packet's time
  (``HistoryLabels``, from the agents' trust histories); hosts without agents have no
  TPBT, and their packets are labelled from the trust the SAVI controller exports
  (``StaticLabels``: both addresses bound);
- left out: the forger's packets (IP ID ``tag``), subflows a host did not open with its
  own SYN or that involve an address other than the legitimate hosts' (the victim's
  joins to a hijacker), ADD_ADDRs that name such an address (echoes of a forged one),
  options on RSTs (a subflow's reset, not signalling), and, when the trial says when a
  forgery the victim answers worked, everything from then on (the answers).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field

from hosts.options import (
    KIND_MPTCP,
    AddAddr,
    AddrTrust,
    Dss,
    MpCapable,
    MpJoin,
    MpPrio,
    OptionError,
    RemoveAddr,
    parse_mptcp,
    tcp_options,
)

CATEGORIES = (
    "add_addr",
    "add_addr_echo",
    "rm_addr",
    "mp_prio",
    "addr_trust",
    "addr_trust_echo",
    "withdrawal",
    "other",
)
PHASES = ("before", "after")
SYN, RST, ACK = 0x02, 0x04, 0x10


@dataclass(frozen=True)
class Packet:
    """One captured segment with an MPTCP option (``options``: the TCP option area)."""

    time: float
    src: str
    sport: int
    dst: str
    dport: int
    ip_id: int
    flags: int
    options: bytes


class StaticLabels:
    """Trust that does not change during a trial: a subflow is trusted when both of its
    addresses are in ``trusted`` (what the SAVI controller exports; empty without SAV)."""

    def __init__(self, trusted: set[str]):
        self.addresses = frozenset(trusted)

    def trusted(self, src: str, dst: str, when: float) -> bool:
        return src in self.addresses and dst in self.addresses

    def first_trusted(self, src: str, dst: str, since: float) -> float | None:
        return since if self.trusted(src, dst, since) else None


class HistoryLabels:
    """Trust as each sender's TPBT held it: ``histories`` are the agents' transitions
    ``(time, token, src, dst, trusted)`` (hosts.tpbt.TrustHistory), where ``src`` is the
    host's own address. A subflow is trusted at ``when`` if the last transition for its
    addresses at or before then said so (one connection per address pair at a time)."""

    def __init__(self, histories: list[list]):
        by_pair: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
        for history in histories:
            for t, _token, src, dst, trusted in history:
                by_pair[(src, dst)].append((float(t), bool(trusted)))
        self.pairs = {k: sorted(v) for k, v in by_pair.items()}
        self.times = {k: [t for t, _ in v] for k, v in self.pairs.items()}

    def trusted(self, src: str, dst: str, when: float) -> bool:
        times = self.times.get((src, dst))
        if not times:
            return False
        i = bisect.bisect_right(times, when)
        return i > 0 and self.pairs[(src, dst)][i - 1][1]

    def first_trusted(self, src: str, dst: str, since: float) -> float | None:
        """The first time at or after ``since`` the subflow was trusted; None if never."""
        if self.trusted(src, dst, since):
            return since
        return next((t for t, ok in self.pairs.get((src, dst), []) if ok and t >= since), None)


@dataclass
class Confinement:
    """Counts: ``control[(category, phase)] = [on trusted subflows, total]``."""

    control: dict[tuple[str, str], list[int]] = field(
        default_factory=lambda: {(c, p): [0, 0] for c in CATEGORIES for p in PHASES}
    )
    handshake: list[int] = field(default_factory=lambda: [0, 0])
    # When the first host's TPBT first held an established subflow as trusted, and when
    # that host's first segment of the connection went out (None: never / no connection).
    trusted_up_at: float | None = None
    started_at: float | None = None

    def totals(self) -> tuple[int, int]:
        return (sum(v[0] for v in self.control.values()), sum(v[1] for v in self.control.values()))

    def as_record(self) -> dict:
        """The flat form records.csv keeps: ``category/phase`` -> [trusted, total]."""
        return {f"{c}/{p}": list(v) for (c, p), v in self.control.items() if v[1]}


def category(option, legit: set[str]) -> str | None:
    """The category of a parsed MPTCP option; None for what is not counted as control
    (DSS; handshakes, which ``confine`` counts apart) or is an answer to a forgery."""
    if isinstance(option, Dss | MpCapable | MpJoin):
        return None
    if isinstance(option, AddAddr):
        if option.address not in legit:
            return None  # the echo of a forged announcement
        return "add_addr_echo" if option.echo else "add_addr"
    if isinstance(option, RemoveAddr):
        return "rm_addr"
    if isinstance(option, MpPrio):
        return "mp_prio"
    if isinstance(option, AddrTrust):
        if option.withdraw:
            return "withdrawal"
        return "addr_trust_echo" if option.echo else "addr_trust"
    return "other"


def options_of(area: bytes) -> list:
    """The MPTCP options of a TCP option area; a part that does not parse (a legitimate
    host never sends one) counts as ``other``."""
    try:
        raw = [o for kind, o in tcp_options(area) if kind == KIND_MPTCP]
    except OptionError:
        return [None]
    out = []
    for o in raw:
        try:
            out.append(parse_mptcp(o))
        except OptionError:
            out.append(None)
    return out


def confine(
    packets: list[Packet],
    labels,
    hosts: dict[str, set[str]],
    tag: int,
    until: float | None = None,
) -> Confinement:
    """Count the control options of ``packets`` (every captured segment with an MPTCP
    option, any order). ``hosts``: the legitimate hosts' addresses, by host, the client
    first (``trusted_up_at`` is seen from its TPBT); ``labels``:
    StaticLabels or HistoryLabels; ``until``: when a forgery first worked (packets from
    then on are the victim's responses, left out)."""
    owner = {addr: h for h, addrs in hosts.items() for addr in addrs}
    legit = set(owner)
    packets = sorted(packets, key=lambda p: p.time)

    def conversation(p):
        return frozenset(((p.src, p.sport), (p.dst, p.dport)))

    opened, established = set(), {}
    for p in packets:
        if p.ip_id == tag or p.src not in legit or p.dst not in legit:
            continue
        if p.flags & (SYN | ACK) == SYN:
            opened.add(conversation(p))
        elif not p.flags & SYN and conversation(p) in opened:
            established.setdefault(conversation(p), p)

    def after(p) -> bool:
        """A subflow of the connection was up and trusted in the sender's TPBT."""
        sender = owner[p.src]
        for conv, first in established.items():
            if first.time > p.time:
                continue
            (x, _), (y, _) = tuple(conv)
            mine, theirs = (x, y) if owner[x] == sender else (y, x)
            if owner[mine] == sender and labels.trusted(mine, theirs, p.time):
                return True
        return False

    out = Confinement()
    client = next(iter(hosts))
    starts = [p.time for p in packets if conversation(p) in opened and owner[p.src] == client]
    out.started_at = min(starts, default=None)
    ups = []
    for conv, first in established.items():
        (x, _), (y, _) = tuple(conv)
        mine, theirs = (x, y) if owner[x] == client else (y, x)
        if owner[mine] == client:
            ups.append(labels.first_trusted(mine, theirs, first.time))
    out.trusted_up_at = min((t for t in ups if t is not None), default=None)
    for p in packets:
        if p.ip_id == tag or conversation(p) not in opened:
            continue
        if until is not None and p.time >= until:
            break
        if p.flags & RST:
            continue
        on_trusted = labels.trusted(p.src, p.dst, p.time)
        for option in options_of(p.options):
            if isinstance(option, MpCapable | MpJoin):
                out.handshake[0] += on_trusted
                out.handshake[1] += 1
                continue
            cat = "other" if option is None else category(option, legit)
            if cat is None:
                continue
            phase = "after" if after(p) else "before"
            counts = out.control[(cat, phase)]
            counts[0] += on_trusted
            counts[1] += 1
    return out
