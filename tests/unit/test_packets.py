"""The packet parser: what SAVI learns from, and that bad input is a clean Malformed."""

import socket
import struct

import pytest

from controller.packets import (
    DHCPACK,
    DHCPRELEASE,
    Arp,
    Dhcp,
    Malformed,
    Neighbor,
    finish_checksum,
    parse_frame,
)
from tests.unit import frames


def test_arp_request():
    f = parse_frame(frames.arp("00:00:00:00:00:01", "10.0.0.1"))
    assert f.payload == Arp(1, "00:00:00:00:00:01", "10.0.0.1", "00:00:00:00:00:00", "10.0.0.254")


def test_dad_ns_and_na():
    f = parse_frame(frames.dad_ns("00:00:00:00:00:01", "2001:db8::1"))
    assert f.payload == Neighbor(135, "::", "2001:db8::1", None)
    f = parse_frame(frames.na("00:00:00:00:00:01", "2001:db8::1", "2001:db8::1"))
    assert f.payload == Neighbor(136, "2001:db8::1", "2001:db8::1", "00:00:00:00:00:01")


def test_dhcp_ack_and_release():
    f = parse_frame(frames.dhcp("ack", "00:00:00:00:00:07", yiaddr="10.0.0.100", lease=120))
    assert isinstance(f.payload, Dhcp)
    assert (f.payload.msg_type, f.payload.yiaddr, f.payload.lease_time) == (
        DHCPACK,
        "10.0.0.100",
        120,
    )
    assert f.payload.from_server and f.payload.client_mac == "00:00:00:00:00:07"
    f = parse_frame(frames.dhcp("release", "00:00:00:00:00:07", ciaddr="10.0.0.100"))
    assert (f.payload.msg_type, f.payload.ciaddr, f.payload.from_server) == (
        DHCPRELEASE,
        "10.0.0.100",
        False,
    )


def test_other_traffic_has_no_payload():
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    f = parse_frame(bytes(Ether() / IP(src="10.0.0.9") / TCP()))
    assert f.payload is None and f.ip_src == "10.0.0.9"


@pytest.mark.parametrize(
    "frame",
    [
        frames.arp("00:00:00:00:00:01", "10.0.0.1"),
        frames.dad_ns("00:00:00:00:00:01", "2001:db8::1"),
        frames.na("00:00:00:00:00:01", "2001:db8::1", "2001:db8::1"),
        frames.dhcp("ack", "00:00:00:00:00:07", yiaddr="10.0.0.100", lease=120),
    ],
    ids=["arp", "dad", "na", "dhcp"],
)
def test_truncated_is_malformed(frame):
    # Every cut that removes part of the parsed region is reported, never crashes.
    for cut in range(len(frame)):
        frames.parse_or_malformed(frame[:cut])


def test_random_corruption_never_raises_anything_else():
    base = [
        frames.arp("00:00:00:00:00:01", "10.0.0.1"),
        frames.na("00:00:00:00:00:01", "2001:db8::1", "2001:db8::1"),
        frames.dhcp("ack", "00:00:00:00:00:07", yiaddr="10.0.0.100", lease=120),
    ]
    for data in frames.corruptions(base, seed=7, rounds=3000):
        frames.parse_or_malformed(data)


def test_specific_malformations():
    good = bytearray(frames.arp("00:00:00:00:00:01", "10.0.0.1"))
    bad_op = good[:20] + b"\x00\x09" + good[22:]
    with pytest.raises(Malformed, match="opcode"):
        parse_frame(bytes(bad_op))
    dhcp = bytearray(frames.dhcp("ack", "00:00:00:00:00:07", yiaddr="10.0.0.100", lease=120))
    magic_at = 14 + 20 + 8 + 236
    dhcp[magic_at] ^= 0xFF
    with pytest.raises(Malformed, match="magic"):
        parse_frame(bytes(dhcp))
    na = bytearray(frames.na("00:00:00:00:00:01", "2001:db8::1", "2001:db8::1"))
    na[14 + 40 + 24 + 1] = 0  # option length 0 would loop forever
    with pytest.raises(Malformed, match="length 0"):
        parse_frame(bytes(na))


# -- finishing checksums the sender left to the NIC -----------------------------------------
def _partial(pkt, layer) -> bytes:
    """``pkt`` as a host with checksum offload hands it to its NIC: the transport
    checksum field holds the pseudo-header's sum only (what Linux writes for
    CHECKSUM_PARTIAL)."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import checksum

    full = pkt.__class__(bytes(pkt))
    ip = full[IP] if IP in full else full[IPv6]
    l4 = bytes(ip.payload)
    proto = ip.proto if IP in full else ip.nh
    if IP in full:
        pseudo = bytes(IP(src=ip.src, dst=ip.dst))[12:20] + struct.pack("!BBH", 0, proto, len(l4))
    else:
        pseudo = (
            socket.inet_pton(socket.AF_INET6, ip.src)
            + socket.inet_pton(socket.AF_INET6, ip.dst)
            + struct.pack("!IxxxB", len(l4), proto)
        )
    partial = (~checksum(pseudo)) & 0xFFFF
    full[layer].chksum = partial
    return bytes(full)


def _l4_checksum_ok(frame: bytes, layer) -> bool:
    from scapy.layers.l2 import Ether

    pkt = Ether(frame)
    given = pkt[layer].chksum
    del pkt[layer].chksum
    return Ether(bytes(pkt))[layer].chksum == given


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "vlan"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_checksum_left_to_the_nic_is_finished(family, transport):
    """A DHCP reply from a host with TX checksum offload reaches the controller with the
    pseudo-header sum only; re-sent as it is, its client would drop it."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1Q, Ether

    layer = UDP if transport == "udp" else TCP
    l4 = UDP(sport=67, dport=68) / (b"lease" * 50) if layer is UDP else TCP(flags="PA") / (b"x" * 9)
    ip = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        if family == "ipv6"
        else IP(src="10.0.0.254", dst="10.0.0.7")
    )
    eth = Ether(src="00:00:00:00:00:fe", dst="00:00:00:00:00:01")
    pkt = eth / Dot1Q(vlan=5) / ip / l4 if family == "vlan" else eth / ip / l4
    partial = _partial(pkt, layer)
    assert not _l4_checksum_ok(partial, layer)
    finished = finish_checksum(partial)
    assert _l4_checksum_ok(finished, layer)
    assert len(finished) == len(partial)
    assert finish_checksum(finished) == finished  # a right checksum is left alone


def test_what_is_not_a_partial_checksum_stays_as_it_came():
    """Fail closed: a corrupt or forged checksum is not repaired; fragments, other
    protocols, short frames and lengths beyond the frame pass through unchanged."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import ARP, Ether

    eth = Ether(src="00:00:00:00:00:fe", dst="00:00:00:00:00:01")
    bad = bytes(
        eth / IP(src="10.0.0.254", dst="10.0.0.7") / UDP(sport=67, dport=68, chksum=0x1234) / b"x"
    )
    assert finish_checksum(bad) == bad
    partial = _partial(
        eth / IP(src="10.0.0.254", dst="10.0.0.7", flags="MF") / UDP() / (b"x" * 8), UDP
    )
    assert finish_checksum(partial) == partial  # a first fragment: its checksum covers more
    too_long = _partial(eth / IP(src="10.0.0.254", dst="10.0.0.7", len=400) / UDP() / b"x", UDP)
    assert finish_checksum(too_long) == too_long
    for total in (0, 19, 20, 27):  # shorter than its own headers: no crash in the app
        short = bytearray(partial)
        short[16:18] = total.to_bytes(2, "big")
        short[20:22] = b"\0\0"  # not a fragment
        assert finish_checksum(bytes(short)) == bytes(short)
    arp = bytes(eth / ARP())
    for frame in (arp, arp[:10], b"", partial[:30]):
        assert finish_checksum(frame) == frame
