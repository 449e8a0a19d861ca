"""Parsing of the packets SAVI learns from: ARP, IPv6 neighbour discovery, DHCPv4 and
DHCPv6.

Pure functions over bytes, so malformed input is a value (``Malformed``) the app counts,
never an exception that escapes a Ryu handler. Only what binding decisions need is decoded.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_ARP = 0x0806
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = 0x8100
ICMPV6 = 58
UDP = 17
ND_NS = 135
ND_NA = 136
DHCP_CLIENT_PORT = 68
DHCP_SERVER_PORT = 67
DHCP_MAGIC = b"\x63\x82\x53\x63"

# DHCP message types (RFC 2132 option 53).
DHCPDISCOVER, DHCPOFFER, DHCPREQUEST, DHCPDECLINE = 1, 2, 3, 4
DHCPACK, DHCPNAK, DHCPRELEASE, DHCPINFORM = 5, 6, 7, 8
DHCP_SERVER_MESSAGES = {DHCPOFFER, DHCPACK, DHCPNAK}

# DHCPv6 (RFC 8415): ports, message types, options.
DHCP6_CLIENT_PORT, DHCP6_SERVER_PORT = 546, 547
SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY = 1, 2, 3, 4, 5, 6, 7
RELEASE, DECLINE, RECONFIGURE, INFORMATION_REQUEST, RELAY_FORW, RELAY_REPL = 8, 9, 10, 11, 12, 13
DHCP6_SERVER_MESSAGES = {ADVERTISE, REPLY, RECONFIGURE, RELAY_REPL}
OPT_CLIENTID, OPT_IA_NA, OPT_IA_TA, OPT_IAADDR, OPT_STATUS_CODE = 1, 3, 4, 5, 13
# IPv6 extension headers walked to reach the upper layer: hop-by-hop, routing,
# destination options (each (length + 1) * 8 bytes); fragments are not reassembled.
EXTENSION_HEADERS, FRAGMENT = {0, 43, 60}, 44


class Malformed(ValueError):
    """A packet of a protocol we parse that is truncated or inconsistent."""


@dataclass(frozen=True)
class Arp:
    op: int
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str


@dataclass(frozen=True)
class Neighbor:
    """An NS or NA. ``src`` is the IPv6 source (``::`` for duplicate address detection)."""

    kind: int
    src: str
    target: str
    lladdr: str | None


@dataclass(frozen=True)
class Dhcp:
    msg_type: int
    xid: int
    client_mac: str
    ciaddr: str
    yiaddr: str
    requested_ip: str | None
    lease_time: int | None
    server_id: str | None
    from_server: bool


@dataclass(frozen=True)
class Lease6:
    ip: str
    valid_lifetime: int  # seconds; 0: the server takes the address back


@dataclass(frozen=True)
class Dhcp6:
    """A DHCPv6 message: who asks (its DUID) and, from a server, which addresses it gave
    (IA_NA and IA_TA addresses whose IA carries no error status)."""

    msg_type: int
    xid: int
    client_duid: bytes | None
    leases: tuple[Lease6, ...]
    from_server: bool


@dataclass(frozen=True)
class Frame:
    eth_src: str
    eth_dst: str
    ethertype: int
    payload: Arp | Neighbor | Dhcp | Dhcp6 | None
    ip_src: str | None = None


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise Malformed(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


def _need(data: bytes, n: int, what: str) -> None:
    if len(data) < n:
        raise Malformed(f"{what}: {len(data)} bytes, need {n}")


def parse_frame(data: bytes) -> Frame:
    """Decode an Ethernet frame; ``payload`` is None for protocols SAVI does not learn from."""
    _need(data, 14, "ethernet")
    dst, src, ethertype = data[0:6], data[6:12], struct.unpack("!H", data[12:14])[0]
    body = data[14:]
    if ethertype == ETH_VLAN:
        _need(body, 4, "vlan tag")
        ethertype, body = struct.unpack("!H", body[2:4])[0], body[4:]
    eth_src, eth_dst = mac_str(src), mac_str(dst)
    if ethertype == ETH_ARP:
        return Frame(eth_src, eth_dst, ethertype, parse_arp(body))
    if ethertype == ETH_IPV6:
        ip_src, payload = _parse_ipv6(body)
        return Frame(eth_src, eth_dst, ethertype, payload, ip_src)
    if ethertype == ETH_IPV4:
        ip_src, payload = _parse_ipv4(body)
        return Frame(eth_src, eth_dst, ethertype, payload, ip_src)
    return Frame(eth_src, eth_dst, ethertype, None)


def parse_arp(body: bytes) -> Arp:
    _need(body, 28, "arp")
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", body[:8])
    if (htype, ptype, hlen, plen) != (1, ETH_IPV4, 6, 4):
        raise Malformed(f"arp for htype {htype} ptype {ptype:#x} hlen {hlen} plen {plen}")
    if op not in (1, 2):
        raise Malformed(f"arp opcode {op}")
    return Arp(
        op=op,
        sender_mac=mac_str(body[8:14]),
        sender_ip=str(ipaddress.IPv4Address(body[14:18])),
        target_mac=mac_str(body[18:24]),
        target_ip=str(ipaddress.IPv4Address(body[24:28])),
    )


def _parse_ipv6(body: bytes) -> tuple[str, Neighbor | Dhcp6 | None]:
    _need(body, 40, "ipv6")
    if body[0] >> 4 != 6:
        raise Malformed(f"ipv6 version {body[0] >> 4}")
    payload_len, next_header = struct.unpack("!HB", body[4:7])
    src = str(ipaddress.IPv6Address(body[8:24]))
    payload = body[40 : 40 + payload_len]
    # The switch matches the upper layer behind extension headers: so does the parser.
    while next_header in EXTENSION_HEADERS or next_header == FRAGMENT:
        _need(payload, 8, "ipv6 extension header")
        if next_header == FRAGMENT:
            raise Malformed("ipv6 fragment: not reassembled")
        length = (payload[1] + 1) * 8
        _need(payload, length, "ipv6 extension header")
        next_header, payload = payload[0], payload[length:]
    if next_header == UDP:
        _need(payload, 8, "udp")
        sport, dport = struct.unpack("!HH", payload[:4])
        if DHCP6_SERVER_PORT in (sport, dport) and {sport, dport} <= {546, 547}:
            return src, parse_dhcp6(payload[8:], from_server=sport == DHCP6_SERVER_PORT)
        return src, None
    if next_header != ICMPV6:
        return src, None
    icmp = payload
    _need(icmp, 4, "icmpv6")
    if icmp[0] not in (ND_NS, ND_NA):
        return src, None
    _need(icmp, 24, "neighbour discovery")
    target = str(ipaddress.IPv6Address(icmp[8:24]))
    wanted = 1 if icmp[0] == ND_NS else 2  # source / target link-layer address option
    lladdr = None
    opts = icmp[24:]
    while opts:
        _need(opts, 2, "nd option")
        kind, length = opts[0], opts[1] * 8
        if length == 0 or length > len(opts):
            raise Malformed(f"nd option {kind} with length {length}")
        if kind == wanted and length >= 8:
            lladdr = mac_str(opts[2:8])
        opts = opts[length:]
    return src, Neighbor(icmp[0], src, target, lladdr)


def _dhcp6_options(data: bytes, what: str) -> list[tuple[int, bytes]]:
    options = []
    while data:
        _need(data, 4, f"{what} option header")
        code, length = struct.unpack("!HH", data[:4])
        _need(data, 4 + length, f"{what} option {code}")
        options.append((code, data[4 : 4 + length]))
        data = data[4 + length :]
    return options


def _ia_leases(code: int, value: bytes) -> list[Lease6]:
    """The addresses of one IA_NA or IA_TA; none if the IA says it failed."""
    fixed = 12 if code == OPT_IA_NA else 4  # IAID, T1, T2 / IAID
    _need(value, fixed, "dhcpv6 IA")
    leases = []
    for inner, v in _dhcp6_options(value[fixed:], "dhcpv6 IA"):
        if inner == OPT_STATUS_CODE:
            _need(v, 2, "dhcpv6 status code")
            if struct.unpack("!H", v[:2])[0] != 0:
                return []
        elif inner == OPT_IAADDR:
            _need(v, 24, "dhcpv6 IA address")
            _dhcp6_options(v[24:], "dhcpv6 IA address")  # well formed, or Malformed
            address = ipaddress.IPv6Address(v[:16])
            if address.is_link_local or address.is_multicast or address.is_unspecified:
                raise Malformed(f"dhcpv6 lease of {address}")
            leases.append(Lease6(str(address), struct.unpack("!I", v[20:24])[0]))
    return leases


def parse_dhcp6(data: bytes, from_server: bool) -> Dhcp6:
    _need(data, 4, "dhcpv6")
    msg_type = data[0]
    if not SOLICIT <= msg_type <= RELAY_REPL:
        raise Malformed(f"dhcpv6 message type {msg_type}")
    if msg_type in (RELAY_FORW, RELAY_REPL):  # between relays and servers: not parsed
        _need(data, 34, "dhcpv6 relay message")
        return Dhcp6(msg_type, 0, None, (), from_server)
    duid, leases, top_status = None, [], 0
    for code, value in _dhcp6_options(data[4:], "dhcpv6"):
        if code == OPT_CLIENTID:
            if not 2 <= len(value) <= 130:  # a DUID is 2 type bytes and at most 128 more
                raise Malformed(f"dhcpv6 client id of {len(value)} bytes")
            duid = value
        elif code in (OPT_IA_NA, OPT_IA_TA):
            leases += _ia_leases(code, value)
        elif code == OPT_STATUS_CODE:
            _need(value, 2, "dhcpv6 status code")
            top_status = struct.unpack("!H", value[:2])[0]
    if top_status != 0:
        leases = []
    xid = int.from_bytes(data[1:4], "big")
    return Dhcp6(msg_type, xid, duid, tuple(leases), from_server)


def _parse_ipv4(body: bytes) -> tuple[str, Dhcp | None]:
    _need(body, 20, "ipv4")
    ihl = (body[0] & 0x0F) * 4
    if body[0] >> 4 != 4 or ihl < 20:
        raise Malformed(f"ipv4 version {body[0] >> 4} header length {ihl}")
    src = str(ipaddress.IPv4Address(body[12:16]))
    if body[9] != UDP:
        return src, None
    udp = body[ihl:]
    _need(udp, 8, "udp")
    sport, dport = struct.unpack("!HH", udp[:4])
    ports = {sport, dport}
    if ports != {DHCP_CLIENT_PORT, DHCP_SERVER_PORT}:
        return src, None
    return src, parse_dhcp(udp[8:], from_server=sport == DHCP_SERVER_PORT)


def parse_dhcp(data: bytes, from_server: bool) -> Dhcp:
    _need(data, 240, "dhcp")
    op, htype, hlen = data[0], data[1], data[2]
    if op not in (1, 2) or htype != 1 or hlen != 6:
        raise Malformed(f"bootp op {op} htype {htype} hlen {hlen}")
    if data[236:240] != DHCP_MAGIC:
        raise Malformed("dhcp magic cookie missing")
    xid = struct.unpack("!I", data[4:8])[0]
    options: dict[int, bytes] = {}
    i = 240
    while i < len(data):
        code = data[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        _need(data, i + 2, "dhcp option")
        length = data[i + 1]
        _need(data, i + 2 + length, f"dhcp option {code}")
        options[code] = data[i + 2 : i + 2 + length]
        i += 2 + length
    if 53 not in options or len(options[53]) != 1:
        raise Malformed("dhcp without a message type")

    def ip_option(code: int) -> str | None:
        value = options.get(code)
        if value is None:
            return None
        if len(value) != 4:
            raise Malformed(f"dhcp option {code} of length {len(value)}")
        return str(ipaddress.IPv4Address(value))

    lease = options.get(51)
    if lease is not None and len(lease) != 4:
        raise Malformed(f"dhcp lease time of length {len(lease)}")
    return Dhcp(
        msg_type=options[53][0],
        xid=xid,
        client_mac=mac_str(data[28:34]),
        ciaddr=str(ipaddress.IPv4Address(data[12:16])),
        yiaddr=str(ipaddress.IPv4Address(data[16:20])),
        requested_ip=ip_option(50),
        lease_time=struct.unpack("!I", lease)[0] if lease is not None else None,
        server_id=ip_option(54),
        from_server=from_server,
    )


TCP = 6
_CHECKSUM_AT = {UDP: 6, TCP: 16}  # where each transport keeps its checksum


def finish_checksum(frame: bytes) -> bytes:
    """``frame`` with its UDP or TCP checksum finished if its sender left that to the NIC.

    A host with checksum offload hands its NIC a segment whose checksum field holds only
    the pseudo-header's sum. OVS's userspace datapath with TSO carries that mark along its
    flows, but a packet-in loses it: a packet the controller sends back out (a DHCP
    reply, a DHCPv6 request) would arrive with a wrong checksum and be dropped. A real
    NIC finishes the checksum on the wire; so does this, for the packets we re-send. A
    checksum that is neither that partial sum nor right stays as it came (a corrupt or
    forged packet stays what it is); anything else (fragments, extension headers, short
    or unparsable frames) is returned unchanged."""
    if len(frame) < 14:
        return frame
    start, ethertype = 14, struct.unpack_from("!H", frame, 12)[0]
    if ethertype == ETH_VLAN and len(frame) >= 18:
        start, ethertype = 18, struct.unpack_from("!H", frame, 16)[0]
    if ethertype == ETH_IPV4 and len(frame) >= start + 20:
        ihl = (frame[start] & 0x0F) * 4
        total, frag, proto = struct.unpack_from("!H2xHxB", frame, start + 2)
        if ihl < 20 or frag & 0x3FFF or proto not in _CHECKSUM_AT:
            return frame
        l4, end, addresses = start + ihl, start + total, frame[start + 12 : start + 20]
    elif ethertype == ETH_IPV6 and len(frame) >= start + 40:
        length, proto = struct.unpack_from("!HB", frame, start + 4)
        if proto not in _CHECKSUM_AT:
            return frame
        l4, end, addresses = start + 40, start + 40 + length, frame[start + 8 : start + 40]
    else:
        return frame
    at = l4 + _CHECKSUM_AT[proto]
    if end > len(frame) or at + 2 > end:  # a length that lies: not ours to mend
        return frame
    if len(addresses) == 8:  # IPv4's pseudo-header, then IPv6's
        pseudo = addresses + struct.pack("!BBH", 0, proto, end - l4)
    else:
        pseudo = addresses + struct.pack("!IxxxB", end - l4, proto)
    (field,) = struct.unpack_from("!H", frame, at)
    if field != _fold(_sum16(pseudo)):
        return frame
    segment = frame[l4:at] + b"\0\0" + frame[at + 2 : end]
    checksum = ~_fold(_sum16(pseudo) + _sum16(segment)) & 0xFFFF
    if proto == UDP and checksum == 0:
        checksum = 0xFFFF  # zero means "no checksum" in UDP over IPv4
    return frame[:at] + struct.pack("!H", checksum) + frame[at + 2 :]


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _fold(total: int) -> int:
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total
