"""What the agent does to the packets it holds in NFQUEUE, as pure functions of bytes and
the extension's decisions (no sockets, no clock): set the T flag on our ADD_ADDRs, move
connection-level signals off untrusted subflows, add carried options, and judge the
ADD_ADDRs and MP_JOIN SYNs that arrive. Segments are parsed by ``hosts/segment.py``.

Fail closed: an arriving packet whose option area does not parse is dropped. Our own
kernel's packets are well formed; one that is not is sent unchanged (it is ours).
"""

from __future__ import annotations

from dataclasses import dataclass

from hosts.extension import ACCEPT, MOVABLE_SUBTYPES, Decision, Extension, Tuple4, Verdict, refuse
from hosts.options import (
    ADD_ADDR,
    KIND_MPTCP,
    AddAddr,
    MpJoin,
    OptionError,
    encode,
    parse_mptcp,
    tcp_options,
)
from hosts.segment import Segment, with_options

KIND_TIMESTAMP = 8
NOP_NOP = b"\x01\x01"


@dataclass(frozen=True)
class Outgoing:
    """The plan for one of our held packets."""

    verdict: Verdict
    packet: bytes | None = None  # its replacement; None: unchanged
    moved: tuple[tuple[Tuple4, bytes], ...] = ()  # options for other (trusted) subflows
    injected: tuple[bytes, ...] = ()  # empty ACKs right behind it, carrying options
    reason: str = ""  # why it is dropped
    problem: str = ""  # what was wrong with it (it is sent unchanged)


@dataclass(frozen=True)
class Incoming:
    decision: Decision
    packet: bytes | None = None


def subtype_of(opt: bytes) -> int:
    return opt[2] >> 4


def _whole(kind: int, opt: bytes) -> bytes:
    """An option as it goes back into an area (timestamps keep their two NOPs)."""
    return NOP_NOP + opt if kind == KIND_TIMESTAMP else opt


def _beside(ts: bytes, opt: bytes) -> bytes:
    """An empty ACK's options: the timestamps and ``opt``, or ``opt`` alone when both do
    not fit in TCP's 40 bytes (an IPv6 ADD_ADDR with a port, 30 bytes; Linux checks PAWS
    only on segments that carry timestamps, so it takes the ACK)."""
    return ts + opt if len(ts) + len(opt) <= 40 else opt


def split_timestamps(area: bytes) -> tuple[bytes, bytes]:
    """(NOP NOP TIMESTAMP, every other option) of an option area (NOPs re-added)."""
    ts, rest = b"", b""
    for kind, opt in tcp_options(area):
        if kind == KIND_TIMESTAMP:
            ts = NOP_NOP + opt
        else:
            rest += opt
    return ts, rest


def empty_ack(raw: bytes, seg: Segment) -> bytes:
    """An empty ACK right behind ``raw``: its headers, no payload, ACK only, and the
    sequence number just after its data, so the peer takes it as in-window and current."""
    t = seg.tcp_at
    doff = (raw[t + 12] >> 4) * 4
    out = bytearray(raw[: t + doff])
    out[t + 13] = 0x10
    seq = (int.from_bytes(out[t + 4 : t + 8], "big") + seg.payload_len) & 0xFFFFFFFF
    out[t + 4 : t + 8] = seq.to_bytes(4, "big")
    return bytes(out)


def plan_outgoing(
    raw: bytes, seg: Segment, ext: Extension, now: float, pending: list[bytes], subtype: int
) -> Outgoing:
    """Our own packet on subflow ``seg.four_tuple``; ``pending``: encoded options waiting
    to ride this subflow."""
    out = seg.four_tuple
    try:
        options = tcp_options(seg.options)
    except OptionError as e:
        return Outgoing(Verdict.ACCEPT, problem=f"our own options do not parse: {e}")
    area, moved, changed = b"", [], False
    target: Tuple4 | None = None
    asked = False
    for kind, opt in options:
        if kind == KIND_MPTCP and len(opt) > 2:
            st = subtype_of(opt)
            if st == ADD_ADDR:
                try:
                    parsed = parse_mptcp(opt, subtype)
                except OptionError:
                    parsed = None
                new = (
                    ext.outgoing_add_addr(out, parsed, now) if isinstance(parsed, AddAddr) else None
                )
                if new is not None:
                    opt, changed = encode(new, subtype), True
            if st in MOVABLE_SUBTYPES:
                if not asked:
                    target, asked = ext.relocation(out, now), True
                if target is not None:  # the kernel picked an untrusted subflow: move it
                    moved.append((target, opt))
                    continue
        area += _whole(kind, opt)
    if moved:
        changed = True
        # A pure ACK that carried only the moved signal is not needed any more.
        if seg.pure_ack and not any(k == KIND_MPTCP for k, _ in tcp_options(area)) and not pending:
            return Outgoing(
                Verdict.DROP, moved=tuple(moved), reason="it carried only moved signals"
            )
    injected = []
    if pending:
        ts, rest = split_timestamps(area)
        # Right after the timestamps: where the sniffer's filter looks for ADDR_TRUST.
        trial = ts + b"".join(pending) + rest
        if seg.pure_ack and len(trial) <= 40:
            area, changed = trial, True
        else:  # a data segment, or no room: empty ACKs right behind it carry them
            injected = [with_options(empty_ack(raw, seg), seg, _beside(ts, opt)) for opt in pending]
    packet = with_options(raw, seg, area) if changed else None
    return Outgoing(Verdict.ACCEPT, packet, tuple(moved), tuple(injected))


def judge_incoming(raw: bytes, seg: Segment, ext: Extension, now: float, subtype: int) -> Incoming:
    """An arriving packet the kernel classifier marked for us: an ADD_ADDR anywhere in
    its options, or (enforcing) an MP_JOIN SYN."""
    try:
        options = tcp_options(seg.options)
        parsed = [
            (kind, opt, parse_mptcp(opt, subtype) if kind == KIND_MPTCP else None)
            for kind, opt in options
        ]
    except OptionError as e:
        return Incoming(refuse(f"options do not parse: {e}"))
    incoming = seg.four_tuple
    if seg.flags & 0x12 == 0x02:  # a SYN: the join policy
        for _, _, p in parsed:
            if isinstance(p, MpJoin) and p.token is not None:
                decision = ext.join_syn(incoming, p.token, now)
                if decision.drop:
                    return Incoming(decision)
    area, changed = b"", False
    for kind, opt, p in parsed:
        if isinstance(p, AddAddr):
            decision = ext.incoming_add_addr(incoming, p, now)
            if decision.drop:
                return Incoming(decision)
            if decision.replacement is not None:
                opt, changed = encode(decision.replacement, subtype), True
        area += _whole(kind, opt)
    return Incoming(ACCEPT, with_options(raw, seg, area) if changed else None)
