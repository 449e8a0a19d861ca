"""When each step of an MPTCP connection's set-up happened, read from a capture of the
client's interfaces: the profile behind the benchmark's set-up ratio
(``python -m experiments.bench --only setup_timeline``).

The kernel's path manager announces and joins at once; with the agents each step waits
for the one before it, and on a different host: the client's ADDR_TRUST notification,
the server's answer, the server's announcement (held until a subflow is trusted), the
client's echo (the classifier hands the ADD_ADDR to the client's agent first) and the
joins to the announced address. Milliseconds since the client's SYN at each milestone
show which step costs what. Pure: a pcap in, milliseconds out.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from hosts.options import ADDR_TRUST_DEFAULT, KIND_MPTCP, OptionError, tcp_options
from hosts.segment import parse

MP_CAPABLE, MP_JOIN, DSS, ADD_ADDR = 0x0, 0x1, 0x2, 0x3
SYN = 0x02
PACKET_OUTGOING = 4  # the cooked header's packet type of what the host sent
LOOPBACK_IFINDEX = 1  # the agents' kicks: not on the wire
LINKTYPE_SLL, LINKTYPE_SLL2 = 113, 276


@dataclass(frozen=True)
class Sighting:
    """One segment of the connection with an MPTCP option other than DSS."""

    ms: float  # since the client's first SYN
    outgoing: bool
    flags: int
    subtypes: frozenset[int]


@dataclass(frozen=True)
class Milestone:
    name: str
    outgoing: bool
    subtype: int
    syn: bool | None  # SYN set, clear, or either


MILESTONES = (
    Milestone("MP_CAPABLE ACK sent", True, MP_CAPABLE, False),
    Milestone("ADDR_TRUST sent", True, ADDR_TRUST_DEFAULT, None),
    Milestone("ADDR_TRUST received", False, ADDR_TRUST_DEFAULT, None),
    Milestone("ADD_ADDR received", False, ADD_ADDR, None),
    Milestone("ADD_ADDR echoed", True, ADD_ADDR, None),
    Milestone("first MP_JOIN SYN sent", True, MP_JOIN, True),
)
ALL_UP = "all joins acknowledged"


def _cooked(frame: bytes, linktype: int) -> tuple[int, int | None, bytes] | None:
    """(packet type, interface index or None, the IP packet) of a ``tcpdump -i any``
    frame: Linux cooked capture v2 (276) or v1 (113), read by hand (scapy's dissection
    of every frame made a capture of 15 bulk transfers take minutes)."""
    if linktype == LINKTYPE_SLL2 and len(frame) >= 20:
        return frame[10], int.from_bytes(frame[4:8], "big"), frame[20:]
    if linktype == LINKTYPE_SLL and len(frame) >= 16:
        return int.from_bytes(frame[0:2], "big"), None, frame[16:]
    return None


def sightings(pcap: Path, server_ports: set[int]) -> dict[int, list[Sighting]]:
    """Per server port, the segments of that connection in a capture of the client's
    interfaces (``tcpdump -i any``), timed from the client's first SYN; loopback (the
    agents' kicks) left out when the capture says which interface a packet used. One
    pass over the capture."""
    from scapy.utils import RawPcapReader

    seen: dict[int, list[tuple[float, bool, int, frozenset[int]]]] = {}
    with RawPcapReader(str(pcap)) as reader:
        for frame, meta in reader:
            cooked = _cooked(frame, reader.linktype)
            if cooked is None or cooked[1] == LOOPBACK_IFINDEX:
                continue
            try:
                seg = parse(cooked[2])
                options = tcp_options(seg.options)
            except OptionError:
                continue
            port = seg.sport if seg.sport in server_ports else seg.dport
            if port not in server_ports:
                continue
            subtypes = frozenset(
                o[2] >> 4 for k, o in options if k == KIND_MPTCP and len(o) > 2
            ) - {DSS}
            if subtypes:
                at = meta.sec + meta.usec / 1e6
                outgoing = cooked[0] == PACKET_OUTGOING
                seen.setdefault(port, []).append((at, outgoing, seg.flags, subtypes))
    timed = {}
    for port in server_ports:
        rows = seen.get(port, [])
        start = next((at for at, out, flags, _ in rows if out and flags & SYN), None)
        timed[port] = (
            []
            if start is None
            else [Sighting((at - start) * 1000, out, fl, st) for at, out, fl, st in rows]
        )
    return timed


def milestones(seen: list[Sighting], joins: int) -> dict[str, float]:
    """Milliseconds at each milestone reached, and at the acknowledgement of the
    ``joins``-th MP_JOIN (every subflow up)."""
    out: dict[str, float] = {}
    for m in MILESTONES:
        hit = next(
            (
                s.ms
                for s in seen
                if s.outgoing == m.outgoing
                and m.subtype in s.subtypes
                and (m.syn is None or bool(s.flags & SYN) == m.syn)
            ),
            None,
        )
        if hit is not None:
            out[m.name] = hit
    join_acks = [s.ms for s in seen if s.outgoing and MP_JOIN in s.subtypes and not s.flags & SYN]
    if len(join_acks) >= joins:
        out[ALL_UP] = join_acks[joins - 1]
    return out


def medians(per_connection: list[dict[str, float]]) -> dict[str, float]:
    """The median of each milestone over the connections that reached it, earliest
    first."""
    names = [m.name for m in MILESTONES] + [ALL_UP]
    found = {
        name: statistics.median(values)
        for name in names
        if (values := [c[name] for c in per_connection if name in c])
    }
    return dict(sorted(found.items(), key=lambda item: item[1]))
