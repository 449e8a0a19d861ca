"""The sniffer's kernel filter, run by libpcap (tcpdump reading a capture) on frames of
both families: it copies handshakes and ADDR_TRUST, never data."""

import shutil
import subprocess

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from hosts.options import ADDR_TRUST_DEFAULT
from hosts.sniffer import bpf_expression

pytestmark = pytest.mark.skipif(not shutil.which("tcpdump"), reason="needs tcpdump")

MP_CAPABLE = (30, bytes([0x00 << 4 | 1, 0x81]) + bytes(8))
MP_JOIN_SYN = (30, bytes([0x10 << 0 | 0x10, 0x01]) + bytes(8))
DSS = (30, bytes([0x20, 0x01, 0, 0, 0, 0]))
ADDR_TRUST = (30, bytes([ADDR_TRUST_DEFAULT << 4, 0x01]) + bytes(10))
TIMESTAMP = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
V4 = {"src": "10.1.0.10", "dst": "10.3.0.20"}
V6 = {"src": "2001:db8:1::10", "dst": "2001:db8:3::20"}


def segments(net) -> dict[str, object]:
    return {
        "mp_capable syn": net / TCP(flags="S", options=[MP_CAPABLE]),
        "mp_join syn": net / TCP(flags="S", options=[MP_JOIN_SYN]),
        "addr_trust after timestamps": net / TCP(flags="A", options=[*TIMESTAMP, ADDR_TRUST]),
        "data": net / TCP(flags="A", options=[*TIMESTAMP, DSS]) / (b"x" * 100),
        "plain tcp": net / TCP(flags="A"),
    }


COPIED = {"mp_capable syn", "mp_join syn", "addr_trust after timestamps"}


def copied(frames: dict, tmp_path) -> set[str]:
    """The names of ``frames`` the filter passes (a frame's TCP source port tells which
    it is)."""
    names = sorted(frames)
    for port, name in enumerate(names, start=1000):
        frames[name][TCP].sport = port
    pcap = tmp_path / "frames.pcap"
    wrpcap(str(pcap), [Ether(dst="00:00:00:00:00:01") / frames[n] for n in names])
    cmd = ["tcpdump", "-r", str(pcap), "-nn", "-q", bpf_expression(ADDR_TRUST_DEFAULT)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return {
        names[int(line.split(" > ")[0].rsplit(".", 1)[1]) - 1000] for line in r.stdout.splitlines()
    }


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_the_filter_copies_handshakes_and_addr_trust_only(family, tmp_path):
    net = IP(**V4) if family == "v4" else IPv6(**V6)
    assert copied(segments(net), tmp_path) == COPIED


def test_ipv6_behind_an_extension_header_is_not_copied(tmp_path):
    """Nothing is learnt from it (fail closed); the classifier judges it when guarded."""
    frames = {n: f for n, f in segments(IPv6(**V6) / IPv6ExtHdrHopByHop()).items()}
    assert copied(frames, tmp_path) == set()
