"""Our encodings, decoded by an independent dissector: Wireshark's MPTCP (tshark)."""

import shutil
import subprocess

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from hosts.options import AddAddr, AddrTrust, encode

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark: make install")


def decode(tmp_path, options: bytes, fields: list[str]) -> list[str]:
    pad = b"\x01" * (-len(options) % 4)
    pkt = (
        Ether()
        / IP(src="10.3.0.20", dst="10.1.0.10")
        / TCP(sport=5201, dport=40000, flags="A", options=[])
    )
    raw = bytearray(bytes(pkt))
    tcp_at = 14 + 20
    raw[tcp_at + 12] = ((20 + len(options) + len(pad)) // 4) << 4
    frame = bytes(raw[: tcp_at + 20]) + pad + options
    frame = bytearray(frame)
    frame[16:18] = (len(frame) - 14).to_bytes(2, "big")  # IP total length
    path = tmp_path / "opts.pcap"
    wrpcap(str(path), [Ether(bytes(frame))])
    cmd = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for f in fields:
        cmd += ["-e", f]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split("|")


def test_tshark_decodes_trusted_add_addr(tmp_path):
    opt = encode(AddAddr(5, "10.4.0.20", trust=True, hmac=bytes.fromhex("0102030405060708")))
    subtype, addrid, ipv4, echo, hmac = decode(
        tmp_path,
        opt,
        [
            "tcp.options.mptcp.subtype",
            "tcp.options.mptcp.addrid",
            "tcp.options.mptcp.ipv4",
            "tcp.options.mptcp.echo",
            "tcp.options.mptcp.addaddrtrunchmac",
        ],
    )
    assert (subtype, addrid, ipv4, echo) == ("3", "5", "10.4.0.20", "0")
    assert int(hmac) == 0x0102030405060708  # tshark prints it as a decimal number


def test_tshark_decodes_ipv6_echo(tmp_path):
    opt = encode(AddAddr(7, "2001:db8::20", echo=True, trust=True))
    subtype, addrid, ipv6, echo = decode(
        tmp_path,
        opt,
        [
            "tcp.options.mptcp.subtype",
            "tcp.options.mptcp.addrid",
            "tcp.options.mptcp.ipv6",
            "tcp.options.mptcp.echo",
        ],
    )
    assert (subtype, addrid, ipv6, echo) == ("3", "7", "2001:db8::20", "1")


def test_tshark_shows_addr_trust_as_mptcp_option_of_our_subtype(tmp_path):
    opt = encode(AddrTrust(1, 1, 30, b"ABCDEFGH"))
    kind, subtype = decode(tmp_path, opt, ["tcp.option_kind", "tcp.options.mptcp.subtype"])
    assert kind.split(",")[-1] == "30" and subtype == "9"  # after the NOPs that pad it
