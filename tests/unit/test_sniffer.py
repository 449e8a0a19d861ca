"""The copies: hosts/firewall.py's NFLOG rules, installed by the real nft in a throwaway
network namespace and fed crafted segments through the kernel, read back through
hosts/nflog.py. Every handshake and ADDR_TRUST is copied once per direction, no data
segment is; and the codec alone on bytes."""

import os
import socket
import subprocess
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroute2 import netns
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop

from hosts import firewall, nflog
from hosts.agent import injecting_socket
from hosts.options import ADDR_TRUST_DEFAULT
from hosts.sniffer import Sniffer, copy_of

MP_CAPABLE = (30, bytes([0x00 << 4 | 1, 0x81]) + bytes(8))
MP_JOIN_SYN = (30, bytes([0x10 << 0 | 0x10, 0x01]) + bytes(8))
DSS = (30, bytes([0x20, 0x01, 0, 0, 0, 0]))
TIMESTAMP = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
NOPS = [("NOP", None), ("NOP", None)]
DSS_ACK64 = (30, bytes([0x20, 0x03]) + bytes(8))  # 12 bytes: a 64-bit data ACK
DSS_MAP = (30, bytes([0x20, 0x0F]) + bytes(8 + 8 + 4 + 2))  # 26 bytes: ACK and mapping, 64-bit
DSS_TRAP = (30, bytes([0x20, 0x03]) + bytes(4) + bytes([30, 12, 0x00, 0]))  # at 40: "MP_CAPABLE"
# Linux's SYN: MSS, SACK-permitted + timestamp, window scale, then MPTCP (offset 40).
SYN_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
OTHER_SUBTYPE = 0xE


def addr_trust(subtype: int = ADDR_TRUST_DEFAULT):
    return (30, bytes([subtype << 4, 0x01]) + bytes(10))


def segments(subtype: int = ADDR_TRUST_DEFAULT) -> dict[str, tuple[TCP, bool]]:
    """name -> (segment, copied?)."""
    return {
        "mp_capable syn": (TCP(flags="S", options=[MP_CAPABLE]), True),
        "mp_capable syn, linux layout": (TCP(flags="S", options=[*SYN_OPTIONS, MP_CAPABLE]), True),
        "mp_join syn": (TCP(flags="S", options=[MP_JOIN_SYN]), True),
        "mp_join ack after timestamps": (TCP(flags="A", options=[*TIMESTAMP, MP_JOIN_SYN]), True),
        "addr_trust after timestamps": (TCP(flags="A", options=[*TIMESTAMP, addr_trust()]), True),
        "addr_trust alone": (TCP(flags="A", options=[addr_trust()]), True),
        "another subtype": (TCP(flags="A", options=[*TIMESTAMP, addr_trust(OTHER_SUBTYPE)]), False),
        "data": (TCP(flags="A", options=[*TIMESTAMP, DSS]) / (b"x" * 100), False),
        # Linux's data segment and ACK (64-bit data ACK, mapping) leave at the first rule
        "data, linux layout": (
            TCP(flags="A", options=[*TIMESTAMP, DSS_MAP, *NOPS]) / (b"x" * 100),
            False,
        ),
        "ack, linux layout": (TCP(flags="A", options=[*TIMESTAMP, DSS_ACK64]), False),
        # ... whose DSS bytes at 40 look like MP_CAPABLE: no copy either
        "data, dss bytes like an option": (TCP(flags="A", options=[*TIMESTAMP, DSS_TRAP]), False),
        # an 8-byte DSS ends at 40: what follows it there is still copied
        "addr_trust behind a short dss": (
            TCP(flags="A", options=[*TIMESTAMP, DSS, addr_trust()]),
            True,
        ),
        "mp_capable after timestamps": (TCP(flags="A", options=[*TIMESTAMP, MP_CAPABLE]), True),
        "addr_trust behind dss": (TCP(flags="A", options=[DSS, addr_trust()]), False),
        "plain tcp": (TCP(flags="A") / (b"y" * 10), False),
    }


@pytest.fixture(scope="module")
def namespace():
    """A namespace with the copy rules, loopback and a veth link to send out of."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = f"unit-sniffer-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (
            "ip link set lo up",
            "ip link add out0 type veth peer name out1",
            "ip link set out1 up",
            "ip link set out0 up",
            "ip addr add 10.99.0.1/24 dev out0",
            "ip -6 addr add 2001:db8:99::1/64 dev out0 nodad",
            # Neighbours given: nothing waits for an answer (out1 has no address).
            "ip neigh add 10.99.0.2 lladdr 02:00:00:00:99:02 dev out0",
            "ip -6 neigh add 2001:db8:99::2 lladdr 02:00:00:00:99:02 dev out0",
        ):
            subprocess.run(["ip", "netns", "exec", name, *cmd.split()], check=True)
        subprocess.run(
            ["ip", "netns", "exec", name, "nft", "-f", "-"],
            input=firewall.ruleset(ADDR_TRUST_DEFAULT),
            text=True,
            check=True,
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def sniffer(namespace):
    netns.pushns(namespace)
    try:
        s = Sniffer()
        yield s
        s.close()
    finally:
        netns.popns()


def send_all(namespace: str, packets: list[bytes], dst: str) -> None:
    netns.pushns(namespace)
    try:
        raw = injecting_socket(dst)
        for packet in packets:
            raw.sendto(packet, (dst, 0))
        raw.close()
    finally:
        netns.popns()


def read_until(sniffer: Sniffer, count: int, timeout: float = 2.0) -> list:
    """What the sniffer reads until ``count`` copies came, then a short wait for more
    (a copy too many must show)."""
    copies, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and len(copies) < count:
        copies += sniffer.read()
        time.sleep(0.01)
    time.sleep(0.1)
    return copies + sniffer.read()


ROUTES = {
    # (family, direction): (source, destination); to loopback a segment is logged coming
    # in (never going out on lo), through the veth link going out.
    ("v4", "in"): ("127.0.0.1", "127.0.0.1"),
    ("v4", "out"): ("10.99.0.1", "10.99.0.2"),
    ("v6", "in"): ("::1", "::1"),
    ("v6", "out"): ("2001:db8:99::1", "2001:db8:99::2"),
}


@pytest.mark.parametrize("family, direction", sorted(ROUTES))
def test_handshakes_and_addr_trust_are_copied_once_and_data_never(
    namespace, sniffer, family, direction
):
    src, dst = ROUTES[family, direction]
    net = IP(src=src, dst=dst) if family == "v4" else IPv6(src=src, dst=dst)
    cases = segments()
    names = sorted(cases)
    packets = []
    for port, name in enumerate(names, start=1000):
        tcp = cases[name][0].copy()
        tcp.sport, tcp.dport = port, 9
        packets.append(bytes(net / tcp))
    wanted = {name for name in names if cases[name][1]}
    send_all(namespace, packets, dst)
    copies = read_until(sniffer, len(wanted))
    seen = [names[c.segment.sport - 1000] for c in copies]
    assert sorted(seen) == sorted(wanted)  # each once, nothing else
    expected_ifname = "lo" if direction == "in" else "out0"
    assert {(c.ifname, c.outgoing) for c in copies} == {(expected_ifname, direction == "out")}
    assert sniffer.overflows == 0 and sniffer.unreadable == 0


def test_ipv6_behind_an_extension_header_is_not_copied(namespace, sniffer):
    """Nothing is learnt from it (fail closed); the classifier judges it when guarded."""
    src, dst = ROUTES["v6", "in"]
    cases = segments()
    packets = [
        bytes(IPv6(src=src, dst=dst) / IPv6ExtHdrHopByHop() / tcp)
        for tcp, copied in cases.values()
        if copied
    ]
    send_all(namespace, packets, dst)
    assert read_until(sniffer, 1, timeout=0.5) == []


def test_the_addr_trust_subtype_follows_the_configuration():
    rules = firewall.copy_rules(OTHER_SUBTYPE)
    assert "{ 0x00, 0x10, 0xe0 }" in rules
    assert "0xf0 }" not in rules


def test_a_second_socket_cannot_take_the_group(sniffer, namespace):
    netns.pushns(namespace)
    try:
        with pytest.raises(nflog.NflogError, match="another socket has it"):
            nflog.NflogSocket(firewall.COPY_GROUP)
    finally:
        netns.popns()


# -- the codec alone ---------------------------------------------------------------------


def packet_message(
    hook: int, indev: int, outdev: int, payload: bytes, before=(), after=()
) -> bytes:
    """A logged packet as the kernel sends it, encoded by pyroute2, with the other
    attributes ``before`` and ``after`` the interfaces and payload."""
    msg = nflog.nflog_packet()
    msg["header"]["type"] = nflog.NFNL_SUBSYS_ULOG << 8 | nflog.NFULNL_MSG_PACKET
    msg["nfgen_family"] = socket.AF_INET
    msg["attrs"] = [
        ("NFULA_PACKET_HDR", {"hw_protocol": 0x0800, "hook": hook, "pad": 0}),
        *before,
        *([("NFULA_IFINDEX_INDEV", indev)] if indev else []),
        *([("NFULA_IFINDEX_OUTDEV", outdev)] if outdev else []),
        ("NFULA_PAYLOAD", payload),
        *after,
    ]
    msg.encode()
    return bytes(msg.data)


def test_decode_reads_every_message_of_a_datagram():
    one = bytes(IP(src="10.1.0.10", dst="10.3.0.20") / TCP(flags="S", options=[MP_CAPABLE]))
    two = bytes(IP(src="10.3.0.20", dst="10.1.0.10") / TCP(flags="SA", options=[MP_CAPABLE]))
    data = packet_message(nflog.NF_INET_POST_ROUTING, 0, 7, one) + packet_message(
        nflog.NF_INET_LOCAL_IN, 3, 0, two
    )
    assert nflog.decode(data) == [
        nflog.Logged(nflog.NF_INET_POST_ROUTING, 0, 7, one),
        nflog.Logged(nflog.NF_INET_LOCAL_IN, 3, 0, two),
    ]
    names = {7: "a-eth0", 3: "a-eth1"}
    out, back = (copy_of(x, names) for x in nflog.decode(data))
    assert (out.ifname, out.outgoing, out.segment.src) == ("a-eth0", True, "10.1.0.10")
    assert (back.ifname, back.outgoing, back.segment.src) == ("a-eth1", False, "10.3.0.20")


def by_pyroute2(data: bytes) -> list[nflog.Logged]:
    """The same datagram as pyroute2's generic decoder reads it: the reference."""
    out = []
    for _, message in nflog.messages(data):
        msg = nflog.nflog_packet(message)
        msg.decode()
        get = msg.get_attr
        hook = get("NFULA_PACKET_HDR")["hook"]
        indev, outdev = get("NFULA_IFINDEX_INDEV") or 0, get("NFULA_IFINDEX_OUTDEV") or 0
        out.append(nflog.Logged(hook, indev, outdev, bytes(get("NFULA_PAYLOAD"))))
    return out


@given(
    hook=st.integers(0, 4),
    indev=st.integers(0, 2**32 - 1),
    outdev=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=200),
    extra=st.lists(
        st.sampled_from(
            [
                ("NFULA_MARK", 0x8A),
                ("NFULA_PREFIX", "mptcp-copy"),
                ("NFULA_UID", 0),
                ("NFULA_GID", 0),
                ("NFULA_HWTYPE", 1),
                ("NFULA_HWLEN", 6),
            ]
        ),
        max_size=4,
    ),
)
def test_the_hand_reader_reads_every_copy_as_pyroute2_does(hook, indev, outdev, payload, extra):
    data = packet_message(hook, indev, outdev, payload, extra[:2], extra[2:]) * 2  # one read
    assert nflog.decode(data) == by_pyroute2(data)


def test_what_cannot_be_read_is_refused_not_guessed():
    good = packet_message(nflog.NF_INET_LOCAL_IN, 1, 0, b"\x45" + bytes(30))
    with pytest.raises(nflog.NflogError, match="length"):
        nflog.decode(good[:-4])  # cut short
    torn = bytearray(good)
    torn[20:22] = (200).to_bytes(2, "little")  # the first attribute runs past the message
    with pytest.raises(nflog.NflogError, match="truncated attribute"):
        nflog.decode(bytes(torn))
    headless = bytearray(good)
    headless[22:24] = (2).to_bytes(2, "little")  # the header attribute as the mark: gone
    with pytest.raises(nflog.NflogError, match="without its header"):
        nflog.decode(bytes(headless))
    assert copy_of(nflog.decode(good)[0], {1: "lo"}) is None  # not a TCP segment
    other_hook = nflog.Logged(0, 1, 0, b"")
    assert copy_of(other_hook, {1: "lo"}) is None


def test_bind_asks_for_whole_packets_at_once():
    bind, mode = (nflog.nflog_config(m) for m in nflog.bind_messages(0x7A))
    for msg in (bind, mode):
        msg.decode()
        assert msg["res_id"] == 0x7A
    assert bind.get_attr("NFULA_CFG_CMD")["command"] == nflog.NFULNL_CFG_CMD_BIND
    assert mode.get_attr("NFULA_CFG_MODE")["copy_mode"] == nflog.NFULNL_COPY_PACKET
    assert mode.get_attr("NFULA_CFG_QTHRESH") == 1
