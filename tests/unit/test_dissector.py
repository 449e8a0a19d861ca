"""The Wireshark dissector (tools/wireshark/trusted_mptcp.lua) as tshark runs it from its
global plugin folder, where scripts/install.sh puts it: our codec's bytes decode to the
values they were made from, the subtype follows the preference, and no bytes at all make
it fail."""

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from hosts.options import AddAddr, AddrTrust, encode

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark: make install")

PLUGIN = Path(__file__).resolve().parents[2] / "tools" / "wireshark" / "trusted_mptcp.lua"
FIELDS = [
    "frame.number",
    "tmptcp.addr_trust.message",
    "tmptcp.addr_trust.subtype",
    "tmptcp.addr_trust.addr_id",
    "tmptcp.addr_trust.counter",
    "tmptcp.addr_trust.lifetime",
    "tmptcp.addr_trust.hmac",
    "tmptcp.addr_trust.ipv4",
    "tmptcp.addr_trust.ipv6",
    "tmptcp.addr_trust.named_in",
    "tmptcp.add_addr.trust",
    "tmptcp.add_addr.echo",
    "tmptcp.add_addr.addr_id",
    "tmptcp.add_addr.ipv4",
    "tmptcp.add_addr.ipv6",
    "tmptcp.add_addr.port",
    "tmptcp.add_addr.hmac",
    "tcp.options.mptcp.subtype",
    "_ws.expert.message",
]


def global_lua_folder() -> Path:
    out = subprocess.run(["tshark", "-G", "folders"], capture_output=True, text=True).stdout
    return Path(re.search(r"^Global Lua Plugins:\s*(\S+)", out, re.M).group(1))


def segment(src: str, dst: str, options: bytes):
    """A pure ACK carrying ``options`` (padded with NOPs to a multiple of 4)."""
    area = options + b"\x01" * (-len(options) % 4)
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    tcp = TCP(sport=5201, dport=40000, flags="A", dataofs=(20 + len(area)) // 4)
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / tcp / area


def decode(tmp_path, frames, subtype: int | None = None, verbose: bool = False) -> list[dict]:
    path = tmp_path / "frames.pcap"
    wrpcap(str(path), frames)
    cmd = ["tshark", "-r", str(path)]
    if subtype is not None:
        cmd += ["-o", f"tmptcp.addr_trust_subtype:{subtype}"]
    if verbose:
        cmd += ["-V"]
    else:
        cmd += ["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]
        cmd += [arg for f in FIELDS for arg in ("-e", f)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for bad in ("Lua Error", "Dissector bug", "dissector error"):
        assert bad not in r.stdout + r.stderr, (r.stdout + r.stderr)[:4000]
    if verbose:
        return []
    return [dict(zip(FIELDS, line.split("|"), strict=True)) for line in r.stdout.splitlines()]


def test_the_installed_plugin_is_this_one():
    installed = global_lua_folder() / PLUGIN.name
    assert installed.exists(), f"{installed} missing: run scripts/install.sh (make install)"
    assert installed.read_bytes() == PLUGIN.read_bytes(), f"{installed} is stale: make install"
    protocols = subprocess.run(["tshark", "-G", "protocols"], capture_output=True, text=True)
    assert re.search(r"^Trusted MPTCP\t\w+\ttmptcp$", protocols.stdout, re.M)


def test_the_wire_format_test_vectors(tmp_path):
    """docs/wire-format.md's vectors; the withdrawal names the address of frame 1."""
    rows = decode(
        tmp_path,
        [
            segment(
                "10.1.0.10", "10.3.0.20", bytes.fromhex("1e12900100000007001e5c3dc9ce8591b3a3")
            ),
            segment(
                "10.3.0.20", "10.1.0.10", bytes.fromhex("1e129101000000030006f7d9bfca7f7154ec")
            ),
            segment(
                "10.1.0.11", "10.3.0.20", bytes.fromhex("1e129201000000080000a68e6b1ad4ac8239")
            ),
            segment(
                "2001:db8::10",
                "2001:db8::20",
                bytes.fromhex("1e12900200000001001e227d48cf99ac0873"),
            ),
        ],
    )
    got = [
        (
            r["tmptcp.addr_trust.message"],
            r["tmptcp.addr_trust.addr_id"],
            r["tmptcp.addr_trust.counter"],
            r["tmptcp.addr_trust.lifetime"],
            r["tmptcp.addr_trust.ipv4"] or r["tmptcp.addr_trust.ipv6"],
            r["tmptcp.addr_trust.named_in"],
        )
        for r in rows
    ]
    assert got == [
        ("notification", "1", "7", "30", "10.1.0.10", ""),
        ("answer", "1", "3", "6", "10.3.0.20", ""),
        ("withdrawal", "1", "8", "0", "10.1.0.10", "1"),
        ("notification", "2", "1", "30", "2001:db8::10", ""),
    ]
    assert rows[0]["tmptcp.addr_trust.hmac"] == "5c3dc9ce8591b3a3"
    assert rows[0]["tcp.options.mptcp.subtype"] == "9"  # Wireshark's own fields stay


def test_every_message_the_codec_makes_decodes_to_its_values(tmp_path):
    rng = random.Random(7)
    sent, frames = [], []
    for _ in range(200):
        kind = rng.choice(["notification", "answer", "withdrawal"])
        opt = AddrTrust(
            addr_id=rng.randrange(256),
            counter=rng.randrange(2**32),
            lifetime=rng.randrange(2**16),
            hmac=rng.randbytes(8),
            echo=kind == "answer",
            withdraw=kind == "withdrawal",
        )
        subtype = 12
        sent.append((kind, opt))
        frames.append(segment("10.2.0.10", "10.4.0.20", encode(opt, subtype)))
    rows = decode(tmp_path, frames, subtype=12)
    for (kind, opt), r in zip(sent, rows, strict=True):
        assert r["tmptcp.addr_trust.message"] == kind
        assert r["tmptcp.addr_trust.subtype"] == "12"
        assert int(r["tmptcp.addr_trust.addr_id"]) == opt.addr_id
        assert int(r["tmptcp.addr_trust.counter"]) == opt.counter
        assert int(r["tmptcp.addr_trust.lifetime"]) == opt.lifetime
        assert r["tmptcp.addr_trust.hmac"] == opt.hmac.hex()


def test_the_subtype_follows_the_preference(tmp_path):
    opt = encode(AddrTrust(1, 5, 30, bytes(8)), 12)
    frames = [segment("10.1.0.10", "10.3.0.20", opt)]
    assert decode(tmp_path, frames)[0]["tmptcp.addr_trust.message"] == ""  # 9 by default
    assert decode(tmp_path, frames, subtype=12)[0]["tmptcp.addr_trust.message"] == "notification"
    # Outside the agents' range (9..15) nothing is taken for ADDR_TRUST.
    frames = [segment("10.1.0.10", "10.3.0.20", encode(AddrTrust(1, 5, 30, bytes(8)), 9))]
    assert decode(tmp_path, frames, subtype=3)[0]["tmptcp.addr_trust.message"] == ""


def test_the_t_flag_of_add_addr(tmp_path):
    hmac = bytes.fromhex("c1a34e37a8d1337f")
    options = [
        AddAddr(2, "10.1.0.10", trust=True, hmac=hmac),
        AddAddr(2, "10.1.0.10", echo=True, trust=True),
        AddAddr(3, "10.4.0.20", hmac=hmac),
        AddAddr(4, "2001:db8::20", port=5201, trust=True, hmac=hmac),
    ]
    rows = decode(tmp_path, [segment("10.1.0.10", "10.3.0.20", encode(o)) for o in options])
    got = [
        (
            r["tmptcp.add_addr.trust"],
            r["tmptcp.add_addr.echo"],
            r["tmptcp.add_addr.addr_id"],
            r["tmptcp.add_addr.ipv4"] or r["tmptcp.add_addr.ipv6"],
            r["tmptcp.add_addr.port"],
            r["tmptcp.add_addr.hmac"],
        )
        for r in rows
    ]
    assert got == [
        ("1", "0", "2", "10.1.0.10", "", hmac.hex()),
        ("1", "1", "2", "10.1.0.10", "", ""),
        ("0", "0", "3", "10.4.0.20", "", hmac.hex()),
        ("1", "0", "4", "2001:db8::20", "5201", hmac.hex()),
    ]


def test_malformed_and_odd_messages_get_expert_notes(tmp_path):
    good = encode(AddrTrust(1, 5, 30, bytes(8)))
    frames = [
        segment("10.1.0.10", "10.3.0.20", good[:1] + bytes([10]) + good[2:10]),  # short
        segment("10.1.0.10", "10.3.0.20", good[:2] + bytes([0x93]) + good[3:]),  # E and W
        segment("10.1.0.10", "10.3.0.20", good[:2] + bytes([0x9C]) + good[3:]),  # reserved
        segment("10.1.0.11", "10.3.0.20", good[:2] + bytes([0x92, 77]) + good[4:]),  # no name
        segment("10.1.0.10", "10.3.0.20", bytes([30, 11, 0x30]) + bytes(8)),  # ADD_ADDR 11
    ]
    notes = [r["_ws.expert.message"] for r in decode(tmp_path, frames)]
    assert "ADDR_TRUST is 18 octets, this one 10" in notes[0]
    assert "E and W both set" in notes[1]
    assert "Reserved bits set" in notes[2]
    assert "Withdrawn address not named earlier" in notes[3]
    assert "no ADD_ADDR is 11 octets" in notes[4]


def fuzzed_area(rng: random.Random) -> bytes:
    """Up to 40 octets of TCP options an attacker might send: MPTCP options of our
    subtypes and others with any length (too short, too long, past the end), NOPs, EOL
    and junk."""
    area = b""
    while len(area) < 40:
        pick = rng.random()
        if pick < 0.1:
            area += b"\x01"
        elif pick < 0.15:
            area += b"\x00" + rng.randbytes(rng.randrange(4))
        elif pick < 0.85:
            subtype = rng.choice([3, 9, rng.randrange(16)])
            length = rng.choice([18, 16, 8, 30, rng.randrange(256)])
            body = rng.randbytes(max(0, min(length, 40) - 3))
            area += bytes([30, length, subtype << 4 | rng.randrange(16)]) + body
        else:
            area += rng.randbytes(rng.randrange(1, 8))
    return area[:40]


def test_fuzzed_bytes_never_make_the_dissector_fail(tmp_path):
    rng = random.Random(2026)
    frames = []
    for i in range(3000):
        src, dst = ("10.1.0.10", "10.3.0.20") if i % 3 else ("2001:db8::10", "2001:db8::20")
        frames.append(segment(src, dst, fuzzed_area(rng)))
    decode(tmp_path, frames, verbose=True)  # every tree built; asserts no dissector error
    rows = decode(tmp_path, frames)
    assert sum(bool(r["tmptcp.addr_trust.message"]) for r in rows) > 100  # some were whole
