"""Raw segment parsing and option rewriting keep packets valid (checked with scapy)."""

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from hosts.options import AddrTrust, OptionError, encode
from hosts.segment import parse, with_options

TS = b"\x01\x01\x08\x0a" + b"\x00\x00\x00\x01\x00\x00\x00\x02"


@pytest.mark.parametrize(
    "ip", [IP(src="10.1.0.10", dst="10.3.0.20"), IPv6(src="2001:db8::1", dst="2001:db8::2")]
)
@pytest.mark.parametrize("payload", [b"", b"hello"])
def test_rewrite_keeps_checksums_and_payload(ip, payload):
    pkt = bytes(ip / TCP(sport=1, dport=2, flags="A", options=[("Timestamp", (1, 2))]) / payload)
    seg = parse(pkt)
    assert (seg.sport, seg.dport, seg.payload_len, seg.pure_ack) == (
        1,
        2,
        len(payload),
        not payload,
    )
    new = with_options(pkt, seg, TS + encode(AddrTrust(1, 1, 30, b"ABCDEFGH")))
    again = (IP if ip.version == 4 else IPv6)(new)
    tcp = again[TCP]
    assert bytes(tcp.payload) == payload
    chk = tcp.chksum
    del tcp.chksum
    if ip.version == 4:
        ipchk = again.chksum
        del again.chksum
        rebuilt = IP(bytes(again))
        assert rebuilt.chksum == ipchk and rebuilt[TCP].chksum == chk
    else:
        assert IPv6(bytes(again))[TCP].chksum == chk
    assert parse(new).options.startswith(TS) and len(parse(new).options) == 32  # 12 + 18 + pad


def test_option_space_limit():
    pkt = bytes(IP() / TCP(flags="A"))
    with pytest.raises(OptionError, match="TCP has 40"):
        with_options(pkt, parse(pkt), b"\x01" * 41)


@pytest.mark.parametrize("raw", [b"", b"\x45" + b"\0" * 10, b"\x60" + b"\0" * 20, b"\x75"])
def test_garbage_is_an_option_error(raw):
    with pytest.raises(OptionError):
        parse(raw)
