"""The packet parser: what SAVI learns from, and that bad input is a clean Malformed."""

import pytest

from controller.packets import DHCPACK, DHCPRELEASE, Arp, Dhcp, Malformed, Neighbor, parse_frame
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
