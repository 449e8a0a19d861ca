"""The controller's liveness probes for FCFS conflicts (RFC 6620 section 2.3.2).

An ARP probe (sender IP 0.0.0.0) or a neighbour solicitation, sent from ``PROBE_MAC`` to
the owner's MAC; a live owner answers to ``PROBE_MAC``, which the pipeline sends back to
the controller.
"""

from __future__ import annotations

import ipaddress

from controller import compat
from controller.pipeline import PROBE_MAC


def probe_link_local() -> str:
    """The EUI-64 link-local address of PROBE_MAC, the source of our solicitations."""
    b = bytearray(int(x, 16) for x in PROBE_MAC.split(":"))
    b[0] ^= 0x02
    iid = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\x00" * 6 + iid))


def probe_packet(owner_mac: str, ip: str) -> bytes:
    pkt = compat.packet.Packet()
    if ipaddress.ip_address(ip).version == 4:
        pkt.add_protocol(compat.ethernet.ethernet(owner_mac, PROBE_MAC, 0x0806))
        pkt.add_protocol(
            compat.arp.arp(
                opcode=1,
                src_mac=PROBE_MAC,
                src_ip="0.0.0.0",
                dst_mac="00:00:00:00:00:00",
                dst_ip=ip,
            )
        )
    else:
        icmp = compat.icmpv6
        pkt.add_protocol(compat.ethernet.ethernet(owner_mac, PROBE_MAC, 0x86DD))
        pkt.add_protocol(compat.ipv6.ipv6(src=probe_link_local(), dst=ip, nxt=58, hop_limit=255))
        pkt.add_protocol(
            icmp.icmpv6(
                type_=icmp.ND_NEIGHBOR_SOLICIT,
                data=icmp.nd_neighbor(dst=ip, option=icmp.nd_option_sla(hw_src=PROBE_MAC)),
            )
        )
    pkt.serialize()
    return bytes(pkt.data)
