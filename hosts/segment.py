"""Raw IPv4/IPv6 TCP segments: read their 4-tuple and options, rewrite the option area.

Pure byte manipulation for the rewriter (what NFQUEUE hands us is the IP packet). After a
rewrite the data offset, the IP length and both checksums are made right again.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from hosts.options import OptionError

MAX_OPTIONS = 40


@dataclass(frozen=True)
class Segment:
    version: int
    src: str
    dst: str
    sport: int
    dport: int
    flags: int
    options: bytes
    payload_len: int
    tcp_at: int  # offset of the TCP header in the packet
    seq: int = 0

    @property
    def pure_ack(self) -> bool:
        return self.payload_len == 0 and self.flags & 0x17 == 0x10  # ACK, no SYN/FIN/RST

    @property
    def four_tuple(self) -> tuple[str, int, str, int]:
        return self.src, self.sport, self.dst, self.dport


def parse(packet: bytes) -> Segment:
    if not packet:
        raise OptionError("empty packet")
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20:
            raise OptionError("truncated IPv4 header")
        ihl = (packet[0] & 0x0F) * 4
        total = struct.unpack("!H", packet[2:4])[0]
        if packet[9] != 6:
            raise OptionError("not TCP")
        src, dst = packet[12:16], packet[16:20]
        tcp_at, end = ihl, min(total, len(packet))
    elif version == 6:
        if len(packet) < 40:
            raise OptionError("truncated IPv6 header")
        if packet[6] != 6:
            raise OptionError("not TCP (or IPv6 extension headers)")
        src, dst = packet[8:24], packet[24:40]
        tcp_at, end = 40, min(40 + struct.unpack("!H", packet[4:6])[0], len(packet))
    else:
        raise OptionError(f"IP version {version}")
    if end - tcp_at < 20:
        raise OptionError("truncated TCP header")
    sport, dport = struct.unpack("!HH", packet[tcp_at : tcp_at + 4])
    doff = (packet[tcp_at + 12] >> 4) * 4
    if doff < 20 or tcp_at + doff > end:
        raise OptionError(f"bad TCP data offset {doff}")
    return Segment(
        version,
        str(ipaddress.ip_address(src)),
        str(ipaddress.ip_address(dst)),
        sport,
        dport,
        packet[tcp_at + 13],
        bytes(packet[tcp_at + 20 : tcp_at + doff]),
        end - tcp_at - doff,
        tcp_at,
        struct.unpack("!I", packet[tcp_at + 4 : tcp_at + 8])[0],
    )


def with_options(packet: bytes, seg: Segment, options: bytes) -> bytes:
    """The packet with its TCP option area replaced by ``options`` (padded with NOPs)."""
    pad = -len(options) % 4
    area = options + b"\x01" * pad
    if len(area) > MAX_OPTIONS:
        raise OptionError(f"options need {len(area)} bytes, TCP has {MAX_OPTIONS}")
    t = seg.tcp_at
    doff = (packet[t + 12] >> 4) * 4
    tcp = bytearray(packet[t : t + 20]) + area + packet[t + doff :]
    tcp[12] = ((20 + len(area)) // 4) << 4 | (tcp[12] & 0x0F)
    ip = bytearray(packet[:t])
    if seg.version == 4:
        ip[2:4] = struct.pack("!H", len(ip) + len(tcp))
        ip[10:12] = b"\0\0"
        ip[10:12] = struct.pack("!H", _checksum(bytes(ip)))
        pseudo = bytes(ip[12:20]) + struct.pack("!BBH", 0, 6, len(tcp))
    else:
        ip[4:6] = struct.pack("!H", len(tcp))
        pseudo = bytes(ip[8:40]) + struct.pack("!I", len(tcp)) + b"\0\0\0\x06"
    tcp[16:18] = b"\0\0"
    tcp[16:18] = struct.pack("!H", _checksum(pseudo + bytes(tcp)))
    return bytes(ip + tcp)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
