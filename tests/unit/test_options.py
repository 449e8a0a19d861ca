"""The MPTCP option codec and HMACs: fixed vectors, round trips, fuzzing."""

import dataclasses
import hashlib
import hmac as hmac_lib
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hosts.options import (
    AddAddr,
    AddrTrust,
    MpCapable,
    MpFastclose,
    MpJoin,
    MpPrio,
    OptionError,
    RemoveAddr,
    Unknown,
    add_addr_hmac,
    addr_trust_hmac,
    encode,
    mptcp_options,
    parse_mptcp,
    signed_addr_trust,
    tcp_options,
    token_of,
)

# Captured from Linux 6.18 (in-kernel PM, tests' dual-homed topology): the server's keys
# in the MP_CAPABLE third ACK, and the ADD_ADDR it sent for 10.4.0.20 (ID 1).
CLIENT_KEY, SERVER_KEY = 0xCF0C42C0428748F2, 0xE424F412626A2002
KERNEL_ADD_ADDR_HMAC = bytes.fromhex("6a3a9282f5095cca")


def test_kernel_add_addr_hmac_vector():
    assert add_addr_hmac(SERVER_KEY, CLIENT_KEY, 1, "10.4.0.20") == KERNEL_ADD_ADDR_HMAC
    assert token_of(SERVER_KEY) == 0xF4D6F172  # the token the kernel's MP_JOIN SYN carried


def test_fixed_byte_vectors():
    announce = AddAddr(1, "10.4.0.20", hmac=KERNEL_ADD_ADDR_HMAC)
    assert encode(announce).hex() == "1e103001" + "0a040014" + "6a3a9282f5095cca"
    trusted = AddAddr(1, "10.4.0.20", trust=True, hmac=b"\0" * 8)
    assert encode(trusted)[2] == 0x32  # subtype 3, flags T
    assert encode(AddAddr(1, "10.4.0.20", echo=True, trust=True)).hex() == "1e0833010a040014"
    assert encode(RemoveAddr((1, 2))).hex() == "1e05400102"
    assert encode(MpPrio(True, 3)).hex() == "1e045103"
    assert encode(MpFastclose(SERVER_KEY)).hex() == "1e0c7000e424f412626a2002"
    note = AddrTrust(1, counter=7, lifetime=30, hmac=b"ABCDEFGH")
    assert encode(note).hex() == "1e129001" + "00000007" + "001e" + b"ABCDEFGH".hex()
    assert encode(note, addr_trust_subtype=0xC)[2] == 0xC0
    withdrawal = AddrTrust(1, 8, 0, b"ABCDEFGH", withdraw=True)
    assert encode(withdrawal)[2] == 0x92  # subtype 9, flags W
    assert parse_mptcp(encode(withdrawal)) == withdrawal
    assert parse_mptcp(encode(note)) == note


KA, KB = 0x1111111111111111, 0x2222222222222222


def test_addr_trust_hmac_vectors():
    """docs/wire-format.md's test vectors, with the HMAC input spelled out byte by byte."""
    key = bytes.fromhex("1111111111111111" "2222222222222222")  # sender's key, receiver's
    label = b"tmptcp addr-trust v2".hex()
    msg = label + "90" + "01" + "0a01000a" + "0a01000a" + "0a030014" + "00000007" + "001e"
    expected = hmac_lib.new(key, bytes.fromhex(msg), hashlib.sha256).digest()[-8:]
    note = signed_addr_trust(
        KA, KB, AddrTrust(1, 7, 30, b""), "10.1.0.10", "10.1.0.10", "10.3.0.20"
    )
    assert note.hmac == expected == bytes.fromhex("5c3dc9ce8591b3a3")
    assert encode(note).hex() == "1e12900100000007001e5c3dc9ce8591b3a3"
    answer = signed_addr_trust(
        KB, KA, AddrTrust(1, 3, 6, b"", echo=True), "10.3.0.20", "10.3.0.20", "10.1.0.10"
    )
    assert encode(answer).hex() == "1e129101000000030006f7d9bfca7f7154ec"
    withdrawal = signed_addr_trust(
        KA, KB, AddrTrust(1, 8, 0, b"", withdraw=True), "10.1.0.10", "10.1.0.11", "10.3.0.20"
    )
    assert encode(withdrawal).hex() == "1e129201000000080000a68e6b1ad4ac8239"
    v6 = signed_addr_trust(
        KA, KB, AddrTrust(2, 1, 30, b""), "2001:db8::10", "2001:db8::10", "2001:db8::20"
    )
    assert encode(v6).hex() == "1e12900200000001001e227d48cf99ac0873"
    t_msg = b"tmptcp add-addr-t v2".hex() + "32" + "02" + "0a01000a" + "0000"
    t_expected = hmac_lib.new(key, bytes.fromhex(t_msg), hashlib.sha256).digest()[-8:]
    assert add_addr_hmac(KA, KB, 2, "10.1.0.10", trust=True) == t_expected
    assert t_expected == bytes.fromhex("c1a34e37a8d1337f")


def test_a_withdrawal_is_never_an_answer():
    with pytest.raises(OptionError, match="E and W"):
        encode(AddrTrust(1, 1, 0, b"ABCDEFGH", echo=True, withdraw=True))
    with pytest.raises(OptionError, match="E and W"):
        parse_mptcp(bytes.fromhex("1e129301000000080000") + b"ABCDEFGH")


def test_ipv6_lengths():
    assert len(encode(AddAddr(2, "2001:db8::1", hmac=b"x" * 8))) == 28
    assert len(encode(AddAddr(2, "2001:db8::1", port=80, hmac=b"x" * 8))) == 30
    assert len(encode(AddAddr(2, "2001:db8::1", echo=True))) == 20
    # ADDR_TRUST carries no address: 18 bytes for both families, so beside NOP NOP
    # TIMESTAMP (12) it fits a pure ACK with a 32-bit data ACK (8): 38 of 40.
    assert len(encode(AddrTrust(2, 1, 1, b"x" * 8))) == 18


def test_hmacs_bind_what_they_cover():
    base = add_addr_hmac(1, 2, 1, "10.0.0.1")
    assert add_addr_hmac(1, 2, 1, "10.0.0.1", trust=True) != base  # T is covered
    assert add_addr_hmac(2, 1, 1, "10.0.0.1") != base  # key order matters
    assert add_addr_hmac(1, 2, 1, "10.0.0.1", port=0) == base  # absent port = zero port
    note = AddrTrust(1, 5, 30, b"")
    ref = addr_trust_hmac(1, 2, note, "10.1.0.10", "10.1.0.10", "10.3.0.20")
    variants = [
        addr_trust_hmac(
            1, 2, dataclasses.replace(note, counter=6), "10.1.0.10", "10.1.0.10", "10.3.0.20"
        ),
        addr_trust_hmac(
            1, 2, dataclasses.replace(note, lifetime=31), "10.1.0.10", "10.1.0.10", "10.3.0.20"
        ),
        addr_trust_hmac(
            1, 2, dataclasses.replace(note, echo=True), "10.1.0.10", "10.1.0.10", "10.3.0.20"
        ),
        addr_trust_hmac(
            1, 2, dataclasses.replace(note, withdraw=True), "10.1.0.10", "10.1.0.10", "10.3.0.20"
        ),
        addr_trust_hmac(
            1, 2, dataclasses.replace(note, addr_id=2), "10.1.0.10", "10.1.0.10", "10.3.0.20"
        ),
        addr_trust_hmac(1, 2, note, "10.1.0.11", "10.1.0.10", "10.3.0.20"),  # address
        addr_trust_hmac(1, 2, note, "10.1.0.10", "10.2.0.10", "10.3.0.20"),  # carrier src
        addr_trust_hmac(1, 2, note, "10.1.0.10", "10.1.0.10", "10.4.0.20"),  # carrier dst
        addr_trust_hmac(1, 2, note, "10.1.0.10", "10.1.0.10", "10.3.0.20", subtype=0xC),
        addr_trust_hmac(2, 1, note, "10.1.0.10", "10.1.0.10", "10.3.0.20"),  # direction
    ]
    assert len(set(variants)) == len(variants) and ref not in variants


def test_tcp_option_area_with_nops_and_timestamps():
    area = b"\x01\x01\x08\x0a" + b"\0" * 8 + encode(RemoveAddr((4,))) + b"\x00\x00\x00"
    assert [k for k, _ in tcp_options(area)] == [8, 30]
    assert mptcp_options(area) == [RemoveAddr((4,))]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x1e\x03", "not an MPTCP option"),
        (b"\x1e\x05\x30\x01\x02", "ADD_ADDR of length 5"),
        (b"\x1e\x10\x31\x01\x0a\x00\x00\x01" + b"\0" * 8, "echo carries no HMAC"),
        (b"\x1e\x05\x50\x01\x02", "MP_PRIO of length 5"),
        (b"\x1e\x0b\x70" + b"\0" * 8, "MP_FASTCLOSE of length 11"),
        (b"\x1e\x0d\x90" + b"\0" * 10, "ADDR_TRUST of length 13"),
        (b"\x1e\x10\x90" + b"\0" * 13, "ADDR_TRUST of length 16"),
        (b"\x1e\x09\x10" + b"\0" * 6, "MP_JOIN of length 9"),
        (b"\x1e\x08\x30\x01\x0a", "length field 8 but 5 bytes"),
    ],
)
def test_malformed_options(raw, message):
    with pytest.raises(OptionError, match=message):
        parse_mptcp(raw)


def test_bad_option_area():
    with pytest.raises(OptionError, match="bad length"):
        tcp_options(b"\x08\x01")
    with pytest.raises(OptionError, match="cut off"):
        tcp_options(b"\x01\x1e")


addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda i: str(ipaddress.IPv4Address(i))),
    st.integers(0, 2**128 - 1).map(lambda i: str(ipaddress.IPv6Address(i))),
)
u8, key = st.integers(0, 255), st.integers(0, 2**64 - 1)
hmac8 = st.binary(min_size=8, max_size=8)
add_addrs = st.builds(
    lambda i, a, port, echo, trust, h: AddAddr(i, a, port, echo, trust, None if echo else h),
    u8,
    addresses,
    st.one_of(st.none(), st.integers(0, 65535)),
    st.booleans(),
    st.booleans(),
    hmac8,
)
options = st.one_of(
    add_addrs,
    st.builds(
        AddrTrust, u8, st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1), hmac8, st.booleans()
    ),
    st.builds(RemoveAddr, st.lists(u8, min_size=1, max_size=20).map(tuple)),
    st.builds(MpPrio, st.booleans(), st.one_of(st.none(), u8)),
    st.builds(MpFastclose, key),
    st.builds(MpCapable, st.just(1), u8, key, key, st.one_of(st.none(), st.integers(0, 65535))),
    st.builds(
        lambda i, t, n, b: MpJoin(b, i, token=t, nonce=n),
        u8,
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.booleans(),
    ),
)


@settings(max_examples=400, deadline=None)
@given(options)
def test_round_trip(opt):
    assert parse_mptcp(encode(opt)) == opt


@settings(max_examples=400, deadline=None)
@given(options, st.data())
def test_truncated_or_corrupted_options_raise_only_option_error(opt, data):
    raw = bytearray(encode(opt))
    cut = data.draw(st.integers(0, len(raw)))
    for _ in range(data.draw(st.integers(0, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(u8)
    for candidate in (bytes(raw[:cut]), bytes(raw)):
        try:
            parse_mptcp(candidate)
        except OptionError:
            pass  # any other exception fails the test


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_random_option_areas(area):
    try:
        mptcp_options(area)
    except OptionError:
        pass  # any other exception fails the test


def test_unknown_subtype_is_kept_raw():
    raw = b"\x1e\x04\xc0\x00"
    assert parse_mptcp(raw) == Unknown(0xC, raw) and encode(parse_mptcp(raw)) == raw
