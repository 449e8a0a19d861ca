"""Frames for unit tests, built with scapy."""

import random

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

DHCP_TYPES = {"discover": 1, "offer": 2, "request": 3, "decline": 4, "ack": 5, "release": 7}


def arp(mac, ip, target="10.0.0.254", op=1, eth_src=None, eth_dst="ff:ff:ff:ff:ff:ff"):
    return bytes(
        Ether(src=eth_src or mac, dst=eth_dst) / ARP(op=op, hwsrc=mac, psrc=ip, pdst=target)
    )


def dad_ns(mac, target):
    return bytes(
        Ether(src=mac, dst="33:33:ff:00:00:01")
        / IPv6(src="::", dst="ff02::1:ff00:1")
        / ICMPv6ND_NS(tgt=target)
    )


def na(mac, src, target, eth_dst="33:33:00:00:00:01", lladdr=None):
    return bytes(
        Ether(src=mac, dst=eth_dst)
        / IPv6(src=src, dst="ff02::1")
        / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=lladdr or mac)
    )


def ns(mac, src, target, lladdr=None):
    return bytes(
        Ether(src=mac, dst="33:33:ff:00:00:02")
        / IPv6(src=src, dst="ff02::1:ff00:2")
        / ICMPv6ND_NS(tgt=target)
        / ICMPv6NDOptSrcLLAddr(lladdr=lladdr or mac)
    )


def dhcp(
    kind,
    client_mac,
    yiaddr="0.0.0.0",
    ciaddr="0.0.0.0",
    lease=None,
    requested=None,
    server="10.0.0.254",
    eth_src=None,
):
    from_server = kind in ("offer", "ack")
    opts = [("message-type", DHCP_TYPES[kind])]
    if lease is not None:
        opts.append(("lease_time", lease))
    if requested:
        opts.append(("requested_addr", requested))
    if from_server:
        opts.append(("server_id", server))
    opts.append("end")
    chaddr = bytes.fromhex(client_mac.replace(":", "")) + b"\0" * 10
    sport, dport = (67, 68) if from_server else (68, 67)
    src = server if from_server else ciaddr
    return bytes(
        Ether(src=eth_src or client_mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src=src, dst="255.255.255.255")
        / UDP(sport=sport, dport=dport)
        / BOOTP(op=2 if from_server else 1, chaddr=chaddr, yiaddr=yiaddr, ciaddr=ciaddr, xid=7)
        / DHCP(options=opts)
    )


def dhcp6(
    kind,
    mac,
    xid=0x1234,
    addresses=(),
    lifetime=120,
    duid_mac=None,
    eth_src=None,
    status=None,
    src=None,
    duid=None,
):
    """A DHCPv6 message of ``kind`` (solicit, request, reply, release, decline, advertise)
    for the client with ``mac`` (its DUID-LL), naming ``addresses`` in one IA_NA."""
    from scapy.layers import dhcp6 as d6

    cls = {
        "solicit": d6.DHCP6_Solicit,
        "request": d6.DHCP6_Request,
        "reply": d6.DHCP6_Reply,
        "release": d6.DHCP6_Release,
        "decline": d6.DHCP6_Decline,
        "advertise": d6.DHCP6_Advertise,
    }[kind]
    from_server = kind in ("reply", "advertise")
    ia_opts = [d6.DHCP6OptIAAddress(addr=a, preflft=lifetime, validlft=lifetime) for a in addresses]
    if status is not None:
        ia_opts.append(d6.DHCP6OptStatusCode(statuscode=status))
    client_id = d6.DHCP6OptClientId(duid=d6.DUID_LL(lladdr=duid_mac or mac))
    if duid is not None:  # raw DUID bytes (DUID-EN, say)
        client_id = d6.DHCP6OptClientId(optlen=len(duid)) / Raw(duid)
    msg = cls(trid=xid) / client_id
    if from_server:
        msg /= d6.DHCP6OptServerId(duid=d6.DUID_LL(lladdr="00:00:00:00:00:fe"))
    if addresses or status is not None:
        msg /= d6.DHCP6OptIA_NA(iaid=1, T1=60, T2=90, ianaopts=ia_opts)
    server_ll = "fe80::200:ff:fe00:fe"
    client_ll = "fe80::200:ff:fe00:" + mac.split(":")[-1]
    if from_server:
        ip = IPv6(src=src or server_ll, dst=client_ll) / UDP(sport=547, dport=546)
        ether = Ether(src=eth_src or "00:00:00:00:00:fe", dst=mac)
    else:
        ip = IPv6(src=src or client_ll, dst="ff02::1:2") / UDP(sport=546, dport=547)
        ether = Ether(src=eth_src or mac, dst="33:33:00:01:00:02")
    return bytes(ether / ip / msg)


def ra(mac, src="fe80::200:ff:fe00:99"):
    from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo

    return bytes(
        Ether(src=mac, dst="33:33:00:00:00:01")
        / IPv6(src=src, dst="ff02::1")
        / ICMPv6ND_RA()
        / ICMPv6NDOptPrefixInfo(prefix="2001:db8:bad::", prefixlen=64)
    )


def parse_or_malformed(data: bytes) -> None:
    """Parse ``data``: a clean result or Malformed, never any other exception."""
    from controller.packets import Malformed, parse_frame

    try:
        parse_frame(data)
    except Malformed:
        pass


def corruptions(base: list[bytes], seed: int, rounds: int):
    """``rounds`` copies of frames from ``base`` with 1 to 6 random bytes changed past
    the Ethernet header (the fuzzing of the parser tests)."""
    rng = random.Random(seed)
    for _ in range(rounds):
        data = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(14, len(data))] = rng.randrange(256)
        yield bytes(data)
