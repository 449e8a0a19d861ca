"""Frames for unit tests, built with scapy."""

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


def dhcp(kind, client_mac, yiaddr="0.0.0.0", ciaddr="0.0.0.0", lease=None, requested=None,
         server="10.0.0.254", eth_src=None):  # fmt: skip
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
