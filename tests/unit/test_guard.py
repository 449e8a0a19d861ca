"""The kernel classifier (hosts/bpf/guard.c), the compiled object itself, run by the
kernel on crafted frames (BPF_PROG_TEST_RUN): no network, but the real verifier and the
real program. Every attacker shape of experiments/shapes.py must be dropped on a guarded
subflow and pass elsewhere; what the agent must judge is marked."""

import os
import random

import pytest
from scapy.layers.inet import IP, TCP, IPOption_NOP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from experiments.attacks import segment_after
from experiments.harness import wait_until
from experiments.shapes import DSS_ACK_ONLY, SHAPES
from hosts import bpf_syscall
from hosts.extension import Scope
from hosts.firewall import MARK_IN
from hosts.guard import CarryMode, Guard, allowed_subtypes, flow_key
from hosts.options import (
    ADDR_TRUST_DEFAULT,
    AddAddr,
    AddrTrust,
    MpFastclose,
    MpJoin,
    MpPrio,
    RemoveAddr,
    encode,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF needs root")

PEER, VICTIM = ("10.3.0.20", 5201), ("10.2.0.10", 40000)
PEER6, VICTIM6 = ("2001:db8:4::20", 5201), ("2001:db8:2::10", 40000)
# Given, so scapy does not resolve it (for IPv6 it would solicit, and wait).
VICTIM_MAC = "00:00:00:00:0a:02"
FAMILIES = {"v4": (PEER, VICTIM), "v6": (PEER6, VICTIM6)}
TC_ACT_OK, TC_ACT_SHOT = 0, 2
OPTIONS = {
    "add_addr": encode(AddAddr(42, "10.2.0.66", hmac=b"h" * 8)),
    # 28 bytes: the shapes that add an option beside it leave the timestamp out
    "add_addr6": encode(AddAddr(42, "2001:db8:2::66", hmac=b"h" * 8)),
    "rm_addr": encode(RemoveAddr((0, 1, 2, 3))),
    "mp_prio": encode(MpPrio(backup=True)),
    "fastclose": encode(MpFastclose(0x1234)),
    "addr_trust": encode(AddrTrust(1, 1, 30, b"t" * 8)),
    "mp_fail": bytes([30, 12, 0x60, 0]) + b"\0" * 8,
}


@pytest.fixture(scope="module")
def module_guard():
    g = Guard(f"unit-{os.getpid()}")
    g.configure(enforce=True, mark=MARK_IN)
    yield g
    g.close()


@pytest.fixture
def guard(module_guard):
    """The loaded classifier, with no subflow held behind an ADD_ADDR when a test ends
    (the agent releases them; here every ADD_ADDR a test sends would hold one)."""
    yield module_guard
    for key in module_guard.map_held.keys():
        module_guard.map_held.delete(key)


GUARDED = allowed_subtypes(Scope.GUARDED, ADDR_TRUST_DEFAULT)
OPENING = allowed_subtypes(Scope.OPENING, ADDR_TRUST_DEFAULT)


@pytest.fixture
def guarded(guard):
    guard.set_guarded({(*peer, *victim): GUARDED for peer, victim in FAMILIES.values()})
    yield guard
    guard.set_guarded({})


@pytest.fixture
def opening(guard):
    guard.set_guarded({(*peer, *victim): OPENING for peer, victim in FAMILIES.values()})
    yield guard
    guard.set_guarded({})


def base(option: bytes, family: str = "v4"):
    """The pure ACK an eavesdropper forges after a seen segment of the subflow."""
    peer, victim = FAMILIES[family]
    ip = IP(src=peer[0], dst=victim[0]) if family == "v4" else IPv6(src=peer[0], dst=victim[0])
    seen = Ether(
        bytes(
            Ether(dst=VICTIM_MAC)
            / ip
            / TCP(
                sport=peer[1],
                dport=victim[1],
                seq=1000,
                ack=2000,
                flags="A",
                options=[("NOP", None), ("NOP", None), ("Timestamp", (5, 6))],
            )
        )
    )
    seen.time = 0
    return segment_after(seen, option, 0)


def run(guard, packet) -> tuple[int, int]:
    frame = packet if isinstance(packet, bytes) else bytes(Ether(dst=VICTIM_MAC) / packet)
    return bpf_syscall.test_run(guard.prog_fd, frame)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("attack", sorted(OPTIONS))
def test_every_shape_is_dropped_on_a_guarded_subflow(guarded, shape, attack, family):
    packets = SHAPES[shape](base(OPTIONS[attack], family), OPTIONS[attack])
    before = guarded.counters()
    verdicts = [run(guarded, p)[0] for p in packets]
    if shape == "fragments":  # the first fragment is enough to stop reassembly
        assert TC_ACT_SHOT in verdicts
    else:
        assert verdicts == [TC_ACT_SHOT] * len(packets)
    after = guarded.counters()
    dropped = sum(after[k] - before[k] for k in ("drop_control", "drop_malformed", "drop_fragment"))
    assert dropped == verdicts.count(TC_ACT_SHOT)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("attack", ["rm_addr", "mp_prio", "fastclose", "mp_fail"])
def test_the_kernels_control_options_are_dropped_in_a_connections_opening(
    opening, shape, attack, family
):
    packets = SHAPES[shape](base(OPTIONS[attack], family), OPTIONS[attack])
    verdicts = [run(opening, p)[0] for p in packets]
    if shape == "fragments":
        assert TC_ACT_SHOT in verdicts
    else:
        assert verdicts == [TC_ACT_SHOT] * len(packets)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("shape", sorted(set(SHAPES) - {"fragments", "behind_unknown"}))
def test_in_the_opening_add_addr_goes_to_the_agent_and_addr_trust_passes(opening, shape, family):
    """ADDR_TRUST starts the trusted subflow; ADD_ADDR is the agent's to judge (it
    refuses it while the subflow is in scope). Neither may hide a control option."""
    option = OPTIONS["add_addr"]
    for p in SHAPES[shape](base(option, family), option):
        assert run(opening, p) == (TC_ACT_OK, MARK_IN), shape
    opening.release((*FAMILIES[family][0], *FAMILIES[family][1]))  # as the agent does
    option = OPTIONS["addr_trust"]
    for p in SHAPES[shape](base(option, family), option):
        assert run(opening, p) == (TC_ACT_OK, 0), shape


def test_in_the_opening_addr_trust_hides_no_control_option(opening):
    for control in ("mp_prio", "rm_addr", "fastclose"):
        options = [(30, OPTIONS["addr_trust"][2:]), (30, OPTIONS[control][2:])]
        both = IP(src=PEER[0], dst=VICTIM[0]) / TCP(
            sport=PEER[1], dport=VICTIM[1], flags="A", options=options
        )
        assert run(opening, both)[0] == TC_ACT_SHOT, control


def test_in_the_opening_unknown_subtypes_are_dropped(opening):
    for option in (OPTIONS["add_addr"], OPTIONS["addr_trust"]):
        for p in SHAPES["behind_unknown"](base(option), option):
            assert run(opening, p)[0] == TC_ACT_SHOT


def test_the_map_holds_what_the_agent_last_set(guard):
    guard.set_guarded({(*PEER, *VICTIM): OPENING})
    guard.set_guarded({(*PEER, *VICTIM): GUARDED})  # a trusted subflow came
    assert run(guard, base(OPTIONS["addr_trust"]))[0] == TC_ACT_SHOT
    guard.set_guarded({})
    assert run(guard, base(OPTIONS["rm_addr"]))[0] == TC_ACT_OK


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("shape", sorted(set(SHAPES) - {"fragments"}))
def test_the_same_shapes_pass_where_nothing_is_guarded(guard, shape, family):
    option = OPTIONS["rm_addr"]
    for p in SHAPES[shape](base(option, family), option):
        assert run(guard, p) == (TC_ACT_OK, 0)


def test_data_and_handshakes_pass_on_a_guarded_subflow(guarded):
    data = base(DSS_ACK_ONLY)
    assert run(guarded, data / Raw(b"x" * 1000))[0] == TC_ACT_OK
    join_ack = encode(MpJoin(False, hmac=b"j" * 20))
    assert run(guarded, base(join_ack))[0] == TC_ACT_OK
    no_options = IP(src=PEER[0], dst=VICTIM[0]) / TCP(sport=PEER[1], dport=VICTIM[1], flags="A")
    assert run(guarded, no_options)[0] == TC_ACT_OK
    # An option after EOL is not read by Linux either.
    eol = (
        IP(src=PEER[0], dst=VICTIM[0])
        / TCP(sport=PEER[1], dport=VICTIM[1], flags="A", options=[("EOL", None)])
        / Raw(b"")
    )
    assert run(guarded, eol)[0] == TC_ACT_OK


def test_malformed_option_areas_are_dropped_only_when_guarded(guard, guarded):
    good = bytes(Ether(dst=VICTIM_MAC) / base(DSS_ACK_ONLY))
    ip_at = 14
    tcp_at = ip_at + 20
    for bad in (b"\x08", b"\x1e\x02", b"\x1e\x01", b"\xfe\x00"):  # cut, too short, 1, 0
        frame = bytearray(good)
        doff = (frame[tcp_at + 12] >> 4) * 4
        area = bytes(frame[tcp_at + 20 : tcp_at + doff])
        new_area = (area[:12] + bad).ljust(len(area), b"\x01")
        frame[tcp_at + 20 : tcp_at + doff] = new_area
        assert run(guarded, bytes(frame))[0] == TC_ACT_SHOT, bad
    assert guarded.counters()["drop_malformed"] >= 4
    # A data offset past the end of the packet.
    frame = bytearray(good)
    frame[tcp_at + 12] = 0xF0
    assert run(guarded, bytes(frame))[0] == TC_ACT_SHOT


def test_ipv6_and_its_extension_headers(guard):
    v6 = ("fd00::20", "fd00::10")
    guard.set_guarded({(v6[0], PEER[1], v6[1], VICTIM[1]): GUARDED})
    try:
        tcp = TCP(sport=PEER[1], dport=VICTIM[1], flags="A", options=[(30, OPTIONS["rm_addr"][2:])])
        assert run(guard, IPv6(src=v6[0], dst=v6[1]) / tcp)[0] == TC_ACT_SHOT
        behind = IPv6(src=v6[0], dst=v6[1]) / IPv6ExtHdrDestOpt() / tcp
        assert run(guard, behind)[0] == TC_ACT_SHOT
        frag = IPv6(src=v6[0], dst=v6[1]) / IPv6ExtHdrFragment() / tcp
        assert run(guard, frag)[0] == TC_ACT_SHOT
        other = IPv6(src=v6[0], dst="fd00::99") / tcp
        assert run(guard, other)[0] == TC_ACT_OK
    finally:
        guard.set_guarded({})


def test_add_addr_anywhere_and_join_syns_are_marked_for_the_agent(guard):
    for shape in ("plain", "behind_dss", "behind_unknown", "payload"):
        option = OPTIONS["add_addr"]
        (p,) = SHAPES[shape](base(option), option)
        assert run(guard, p) == (TC_ACT_OK, MARK_IN), shape
    join = encode(MpJoin(False, addr_id=1, token=7, nonce=9))
    syn = IP(src=PEER[0], dst=VICTIM[0]) / TCP(
        sport=PEER[1], dport=VICTIM[1], flags="S", options=[("MSS", 1460), (30, join[2:])]
    )
    assert run(guard, syn) == (TC_ACT_OK, MARK_IN)
    assert guard.release((*PEER, *VICTIM))  # the ADD_ADDRs judged
    assert run(guard, base(OPTIONS["rm_addr"])) == (TC_ACT_OK, 0)  # not the agent's to judge


def test_nothing_is_dropped_or_marked_for_joins_when_not_enforcing(guard):
    guard.configure(enforce=False, mark=MARK_IN)
    try:
        join = encode(MpJoin(False, addr_id=1, token=7, nonce=9))
        syn = IP(src=PEER[0], dst=VICTIM[0]) / TCP(
            sport=PEER[1], dport=VICTIM[1], flags="S", options=[(30, join[2:])]
        )
        assert run(guard, syn) == (TC_ACT_OK, 0)
        (frag, *_) = SHAPES["fragments"](base(OPTIONS["rm_addr"]), OPTIONS["rm_addr"])
        assert run(guard, frag)[0] == TC_ACT_OK
    finally:
        guard.configure(enforce=True, mark=MARK_IN)


@pytest.fixture
def control_out(guard):
    fd = bpf_syscall.obj_get(guard.control_out_prog)
    yield fd
    guard.set_carriers({})
    os.close(fd)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_control_out_queues_own_control_options_and_the_carriers_segments(
    guard, control_out, family
):
    """The socket filter sees our segments from the IP header on (as iptables' bpf match
    does). Our own ADD_ADDR, RM_ADDR, MP_PRIO anywhere: queued; data: not, unless its
    subflow is in the carriers map, and then only until it is taken out."""
    peer, victim = FAMILIES[family]
    ours = (*victim, *peer)  # as our segments leave
    ip = IP if family == "v4" else IPv6

    def out(*options: bytes, flags="A", payload=b"", src=victim, dst=peer) -> int:
        opts = [(30, o[2:]) for o in options]
        tcp = TCP(sport=src[1], dport=dst[1], flags=flags, options=opts)
        frame = Ether(dst=VICTIM_MAC) / ip(src=src[0], dst=dst[0]) / tcp / Raw(payload)
        return bpf_syscall.test_run(control_out, bytes(frame))[0]

    for name in ("add_addr", "rm_addr", "mp_prio"):
        assert out(OPTIONS[name]) == 1, name
        assert out(DSS_ACK_ONLY, OPTIONS[name]) == 1, f"{name} behind DSS"
        assert out(OPTIONS[name], flags="S") == 0, f"{name} on a SYN"
    assert out(DSS_ACK_ONLY, payload=b"x" * 1000) == 0
    guard.set_carriers({ours: CarryMode.ANY})
    assert out(DSS_ACK_ONLY, payload=b"x" * 1000) == 1
    assert out(flags="A") == 1  # whatever the segment: the next one takes the options
    assert out(DSS_ACK_ONLY, src=(victim[0], victim[1] + 1)) == 0  # another subflow
    assert out(DSS_ACK_ONLY, src=peer, dst=victim) == 0  # the other direction
    # A refresh: only a segment without payload (the kick's ACK) goes to the agent.
    guard.set_carriers({ours: CarryMode.EMPTY})
    assert out(DSS_ACK_ONLY, payload=b"x" * 1000) == 0
    assert out(DSS_ACK_ONLY, payload=b"x") == 0
    assert out(DSS_ACK_ONLY, flags="PA", payload=b"x" * 1000) == 0
    assert out(DSS_ACK_ONLY) == 1
    assert out(flags="A") == 1
    assert out(DSS_ACK_ONLY, flags="FA") == 1  # no payload: a FIN can carry them too
    assert out(OPTIONS["add_addr"], payload=b"x" * 1000) == 1  # own control: still queued
    assert out(DSS_ACK_ONLY, src=(victim[0], victim[1] + 1)) == 0
    guard.set_carriers({})
    assert out(DSS_ACK_ONLY, payload=b"x" * 1000) == 0
    assert out(DSS_ACK_ONLY) == 0
    assert guard.map_carriers.lookup(flow_key(*ours)) is None


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_segments_behind_an_arriving_add_addr_wait_for_it_until_released(guard, family):
    """The agent holds an ADD_ADDR to judge it; what follows on its subflow is queued
    behind it (marked), so no data moves TCP's window past it and no newer timestamp
    fails it on PAWS, until the agent releases the subflow. Other subflows and the other
    direction pass as before."""
    peer, victim = FAMILIES[family]
    incoming = (*peer, *victim)
    data = base(DSS_ACK_ONLY, family) / Raw(b"x" * 1000)
    assert run(guard, data) == (TC_ACT_OK, 0)
    before = guard.counters()["mark_held"]
    assert run(guard, base(OPTIONS["add_addr"], family)) == (TC_ACT_OK, MARK_IN)
    assert run(guard, data) == (TC_ACT_OK, MARK_IN)
    assert run(guard, base(DSS_ACK_ONLY, family)) == (TC_ACT_OK, MARK_IN)  # pure ACKs too
    assert guard.counters()["mark_held"] == before + 2
    ip = IP if family == "v4" else IPv6
    other = ip(src=peer[0], dst=victim[0]) / TCP(sport=peer[1] + 1, dport=victim[1], flags="A")
    assert run(guard, other) == (TC_ACT_OK, 0)
    assert guard.release(incoming) is True
    assert run(guard, data) == (TC_ACT_OK, 0)
    assert guard.release(incoming) is False  # nothing held any more


def test_a_forbidden_add_addr_on_a_guarded_subflow_holds_nothing(guarded):
    """Dropped by the classifier, it never reaches the agent: nothing waits behind it."""
    assert run(guarded, base(OPTIONS["add_addr"]))[0] == TC_ACT_SHOT
    assert run(guarded, base(DSS_ACK_ONLY) / Raw(b"x" * 100)) == (TC_ACT_OK, 0)
    assert guarded.release((*PEER, *VICTIM)) is False


def test_flow_keys_are_per_direction_and_family():
    assert flow_key("10.0.0.1", 1, "10.0.0.2", 2) != flow_key("10.0.0.2", 2, "10.0.0.1", 1)
    assert len(flow_key("fd00::1", 1, "fd00::2", 2)) == len(flow_key("10.0.0.1", 1, "10.0.0.2", 2))
    with pytest.raises(ValueError):
        flow_key("10.0.0.1", 1, "fd00::2", 2)


def test_trust_is_bound_to_the_interface(guard):
    """A packet for a bound address is taken only from that address's interface
    (BPF_PROG_TEST_RUN delivers on the loopback device, ifindex 1)."""
    packet = IP(src=PEER[0], dst=VICTIM[0]) / TCP(sport=PEER[1], dport=VICTIM[1], flags="A")
    before = guard.counters()["drop_wrong_iface"]
    guard.bind(VICTIM[0], 1)
    assert run(guard, packet)[0] == TC_ACT_OK
    guard.bind(VICTIM[0], 4242)  # the address lives behind another interface
    assert run(guard, packet)[0] == TC_ACT_SHOT
    icmp = bytes(
        Ether(dst=VICTIM_MAC) / IP(src=PEER[0], dst=VICTIM[0], proto=1) / Raw(b"\x08\0\0\0\0\0\0\0")
    )
    assert run(guard, icmp)[0] == TC_ACT_SHOT  # whatever it carries
    assert guard.counters()["drop_wrong_iface"] == before + 2
    guard.bind(VICTIM[0], 1)
    v6 = IPv6(src="fd00::20", dst="fd00::10") / TCP(sport=1, dport=2, flags="A")
    guard.bind("fd00::10", 4242)
    assert run(guard, v6)[0] == TC_ACT_SHOT
    guard.bind("fd00::10", 1)
    assert run(guard, v6)[0] == TC_ACT_OK


def test_a_refused_object_leaves_nothing_pinned(tmp_path, monkeypatch):
    import hosts.guard as guard_module

    bogus = tmp_path / "guard.o"
    bogus.write_bytes(b"not an ELF object")
    monkeypatch.setattr(guard_module, "OBJECT", bogus)
    with pytest.raises(guard_module.GuardError, match="bpftool"):
        Guard(f"unit-bogus-{os.getpid()}")
    assert not (guard_module.BPFFS / f"unit-bogus-{os.getpid()}").exists()


def handshake(flags: str, option: bytes, port: int = VICTIM[1]):
    return IP(src=PEER[0], dst=VICTIM[0]) / TCP(
        sport=PEER[1], dport=port, flags=flags, options=[("MSS", 1460), (30, option[2:])]
    )


@pytest.fixture
def self_opening(guard):
    """The classifier begins openings itself (the agent's settings while it expects a
    trusted subflow), for 200 ms."""
    guard.configure(enforce=True, mark=MARK_IN, opening_allowed=OPENING, opening_ms=200)
    yield guard
    guard.configure(enforce=True, mark=MARK_IN)
    guard.set_guarded({})


@pytest.mark.parametrize("flags", ["S", "SA"])
@pytest.mark.parametrize("first", ["capable", "join"])
def test_an_arriving_mptcp_handshake_begins_an_opening_before_the_agent_knows(
    self_opening, flags, first
):
    """The server's SYN in, or the client's SYN/ACK in: from that segment on the subflow
    is in an opening, with no entry of the agent's; a forgery built from the SYN/ACK
    comes too late."""
    port = VICTIM[1] + len(flags) + (10 if first == "join" else 0)  # a fresh 4-tuple
    option = (
        encode(MpJoin(False, addr_id=1, token=7, nonce=9))
        if first == "join"
        else (bytes([30, 12, 0x01, 0x81]) + b"\x11" * 8)
    )
    before = self_opening.counters()["opened"]
    prio = base(OPTIONS["mp_prio"])
    prio[TCP].dport = port
    assert run(self_opening, prio)[0] == TC_ACT_OK  # no handshake seen: not in scope
    assert run(self_opening, handshake(flags, option, port))[0] == TC_ACT_OK
    assert self_opening.counters()["opened"] == before + 1
    assert run(self_opening, prio)[0] == TC_ACT_SHOT
    add = base(OPTIONS["add_addr"])
    add[TCP].dport = port
    assert run(self_opening, add) == (TC_ACT_OK, MARK_IN)  # the agent's to judge
    four = (PEER[0], PEER[1], VICTIM[0], port)
    assert self_opening.release(four)  # the agent judged it
    trust = base(OPTIONS["addr_trust"])
    trust[TCP].dport = port
    assert run(self_opening, trust) == (TC_ACT_OK, 0)
    # The agent lifts it (a trusted subflow) or narrows it (guarded): its map wins.
    self_opening.set_guarded({four: allowed_subtypes(None, ADDR_TRUST_DEFAULT)})
    assert run(self_opening, prio)[0] == TC_ACT_OK
    self_opening.set_guarded({four: GUARDED})
    assert run(self_opening, trust)[0] == TC_ACT_SHOT


def test_an_opening_the_classifier_began_ends_by_itself(self_opening):
    port = 41000
    option = bytes([30, 12, 0x01, 0x81]) + b"\x11" * 8
    assert run(self_opening, handshake("SA", option, port))[0] == TC_ACT_OK
    prio = base(OPTIONS["mp_prio"])
    prio[TCP].dport = port
    assert run(self_opening, prio)[0] == TC_ACT_SHOT
    wait_until(lambda: run(self_opening, prio)[0] == TC_ACT_OK, 5, "the opening's end")
    self_opening.configure(enforce=True, mark=MARK_IN)  # no trusted address: none begins
    other = 41001
    assert run(self_opening, handshake("SA", option, other))[0] == TC_ACT_OK
    prio[TCP].dport = other
    assert run(self_opening, prio)[0] == TC_ACT_OK


# -- the hot path: the quick walk and the linear reader give the walk's answers ---------
def reference_walk(area: bytes) -> tuple[int, bool]:
    """(MPTCP subtypes seen as a bit mask, malformed) as Linux's tcp_parse_options()
    reads the area and the program's full walk mirrors it: subtypes found before a
    malformed option count."""
    subtypes, i = 0, 0
    while i < len(area):
        kind = area[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(area):
            return subtypes, True
        length = area[i + 1]
        if length < 2 or i + length > len(area):
            return subtypes, True
        if kind == 30:
            if length < 3:
                return subtypes, True
            subtypes |= 1 << (area[i + 2] >> 4)
        i += length
    return subtypes, False


TIMESTAMP = bytes([1, 1, 8, 10]) + bytes(8)


def option_areas() -> list[bytes]:
    """Areas at the quick walk's edges (what Linux sends, with every way of being a
    little different from it) and random ones; padded to a whole data offset."""
    dss = bytes([30, 20, 0x20, 0x05]) + bytes(16)
    prefixes = [b"", TIMESTAMP, bytes([1, 1, 8, 8]) + bytes(6), bytes([1, 8, 10]) + bytes(8)]
    middles = [b"", dss, dss[:2] + b"\x20", bytes([30, 2]), bytes([30, 30, 0x20, 0])]
    middles += [OPTIONS[n] for n in ("add_addr", "rm_addr", "mp_prio", "addr_trust", "mp_fail")]
    middles += [bytes([30, 8, 0xE0]) + bytes(5), bytes([30, 40, 0x20]) + bytes(5)]
    tails = [b"", b"\x01", b"\x01\x01\x01", b"\x00\x1e\x04", b"\x01\x00\x30", b"\x02", b"\x1e"]
    tails += [b"\x01\x1e\x03\x30", OPTIONS["rm_addr"], b"\x01\x01\x01\x01\x00"]
    areas = [p + m + t for p in prefixes for m in middles for t in tails]
    rng = random.Random(13)
    for _ in range(300):
        n = rng.choice((4, 8, 12, 20, 32, 40))
        areas.append(
            bytes(
                rng.choice((0, 1, 2, 8, 10, 30, 0x20, 0x30, rng.randrange(256))) for _ in range(n)
            )
        )
        areas.append(
            TIMESTAMP + bytes([30, rng.randrange(24), rng.randrange(256)]) + rng.randbytes(9)
        )
    padded = {(a + b"\x01" * (-len(a) % 4)) for a in areas}
    return sorted(a for a in padded if len(a) <= 40)


def segment_with(area: bytes, payload: bytes, family: str = "v4", long_way: bool = False):
    """A segment with this option area; ``long_way``: behind IPv4 options or an IPv6
    destination options header, which the linear reader leaves to read_segment()."""
    peer, victim = FAMILIES[family]
    tcp = TCP(sport=peer[1], dport=victim[1], flags="A", dataofs=5 + len(area) // 4)
    if family == "v4":
        ip = IP(src=peer[0], dst=victim[0], options=[IPOption_NOP()] * 4 if long_way else [])
    else:
        ip = IPv6(src=peer[0], dst=victim[0])
        ip = ip / IPv6ExtHdrDestOpt() if long_way else ip
    return ip / tcp / Raw(area + payload)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_hot_path_judges_every_option_area_as_the_walk_does(guard, family):
    """Data segments are read straight from the packet, a pure ACK's options (the packet
    ends within the largest option area) by one helper call, a segment behind IPv4
    options or an IPv6 extension header by read_segment(); each option area by the
    quick walk when it looks like Linux's, else by the loop. Every way, on every area,
    gives the reference walk's verdict: on a guarded subflow dropped when malformed or
    when it carries anything but MP_CAPABLE, MP_JOIN or DSS; elsewhere passed, and
    queued for the agent when it carries ADD_ADDR."""
    peer, victim = FAMILIES[family]
    incoming = (*peer, *victim)
    for area in option_areas():
        subtypes, malformed = reference_walk(area)
        forbidden = malformed or bool(subtypes & ~0b111)
        add_addr = bool(subtypes & (1 << 3))
        for payload, long_way in ((b"", False), (b"x" * 100, False), (b"x" * 100, True)):
            frame = segment_with(area, payload, family, long_way)
            how = (area.hex(), len(payload), long_way)
            guard.set_guarded({incoming: GUARDED})
            verdict, _ = run(guard, frame)
            assert verdict == (TC_ACT_SHOT if forbidden else TC_ACT_OK), how
            guard.set_guarded({})
            assert run(guard, frame) == (TC_ACT_OK, MARK_IN if add_addr else 0), how
            guard.release(incoming)


def test_the_linear_reader_leaves_what_it_cannot_read_to_the_helper_calls(guard):
    """IPv4 options, fragments, IPv6 extension headers and a data offset under 5 go the
    long way, and are judged as before (the shapes above test them with payloads)."""
    guard.set_guarded({(*PEER, *VICTIM): GUARDED})
    try:
        rm_addr = [(30, OPTIONS["rm_addr"][2:])]
        tcp = TCP(sport=PEER[1], dport=VICTIM[1], flags="A", options=rm_addr) / Raw(b"x" * 100)
        with_options = IP(src=PEER[0], dst=VICTIM[0], options=[IPOption_NOP()] * 4) / tcp
        assert run(guard, with_options)[0] == TC_ACT_SHOT
        data = TCP(sport=PEER[1], dport=VICTIM[1], flags="A") / Raw(b"x" * 100)
        fragment = IP(src=PEER[0], dst=VICTIM[0], flags="MF") / data
        assert run(guard, fragment)[0] == TC_ACT_SHOT
        short = bytearray(bytes(Ether(dst=VICTIM_MAC) / IP(src=PEER[0], dst=VICTIM[0]) / data))
        short[14 + 20 + 12] = 0x40  # a data offset of 4 words: no room for the header
        assert run(guard, bytes(short))[0] == TC_ACT_SHOT
    finally:
        guard.set_guarded({})
