"""The attacker's packet shapes (experiments/shapes.py) as bytes: each carries the forged
option whole in a TCP header that parses, whatever the option's length."""

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from experiments.shapes import OPTION_SPACE, SHAPES, NoRoom
from hosts.options import AddAddr, MpPrio, encode
from hosts.segment import parse

FAMILIES = {
    "v4": lambda: IP(src="10.3.0.20", dst="10.2.0.10"),
    "v6": lambda: IPv6(src="2001:db8:4::20", dst="2001:db8:2::10"),
}
OPTIONS = {
    "mp_prio": encode(MpPrio(backup=True)),
    # 28 bytes: with the 12 of NOP NOP TIMESTAMP the header is full
    "add_addr6": encode(AddAddr(42, "2001:db8:2::66", hmac=b"h" * 8)),
}


def base(family: str):
    return FAMILIES[family]() / TCP(
        sport=5201,
        dport=40000,
        seq=1000,
        ack=2000,
        flags="A",
        options=[("NOP", None), ("NOP", None), ("Timestamp", (5, 6))],
    )


def whole(packets) -> bytes:
    """The packet the victim's kernel sees: fragments reassembled (by scapy)."""
    if len(packets) == 1:
        return bytes(packets[0])
    if IP in packets[0]:
        # Reassembly by offset: scapy's defragment returns the whole datagram.
        from scapy.layers.inet import defragment

        return bytes(defragment([IP(bytes(p)) for p in packets])[0])
    from scapy.layers.inet6 import defragment6

    return bytes(defragment6([IPv6(bytes(p)) for p in packets]))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("shape", sorted(set(SHAPES) - {"ip_options"}))
def test_every_shape_carries_the_option_whole_in_a_header_that_parses(shape, option, family):
    raw = whole(SHAPES[shape](base(family), OPTIONS[option]))
    seg = parse(raw)  # raises on a data offset that runs past the packet or below 20
    assert (seg.sport, seg.dport) == (5201, 40000)
    assert 0 < len(seg.options) <= OPTION_SPACE and OPTIONS[option] in seg.options
    # The timestamp stays wherever there is room for it beside what the shape adds.
    has_timestamp = b"\x08\x0a" in seg.options[:4]
    assert has_timestamp == (option == "mp_prio" or shape in ("plain", "tcp_nops", *_ALONE))


# Shapes that put nothing beside the option: a 28-byte option fits with the timestamp.
_ALONE = ("psh", "urg", "payload", "fragments", "fin", "rst")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ip_options_pads_the_ip_header_and_keeps_the_tcp_header_whole(family):
    (pkt,) = SHAPES["ip_options"](base(family), OPTIONS["add_addr6"])
    raw = bytes(pkt)
    if family == "v4":
        assert IP(raw).ihl == 15  # 40 bytes of IPv4 options
        tcp = parse(raw)
    else:
        assert IPv6(raw).nh == 60 and len(raw) == 40 + 40 + 60  # destination options first
        # hosts.segment reads TCP right after the fixed header only: move it there
        tcp = parse(raw[:4] + (len(raw) - 80).to_bytes(2, "big") + b"\x06" + raw[7:40] + raw[80:])
    assert OPTIONS["add_addr6"] in tcp.options and len(tcp.options) == OPTION_SPACE


def test_an_option_that_fits_nowhere_is_refused_not_sent_broken():
    too_long = bytes([30, 42, 0x30]) + b"\0" * 39
    for shape in SHAPES:
        with pytest.raises(NoRoom, match="do not fit"):
            SHAPES[shape](base("v4"), too_long)
