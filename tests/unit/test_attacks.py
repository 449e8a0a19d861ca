"""The attack programs' packet builders, without a network: what an eavesdropper learns
from a tap, and the forged segments it sends."""

import argparse
import random

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from experiments import attacks
from hosts.events import Event, EventKind
from hosts.extension import Extension
from hosts.options import (
    AddAddr,
    AddrTrust,
    MpCapable,
    MpFastclose,
    MpJoin,
    MpPrio,
    RemoveAddr,
    add_addr_hmac,
    encode,
    mptcp_options,
    parse_mptcp,
    token_of,
)

A, A2, B, B2, M = "10.2.0.10", "10.1.0.10", "10.3.0.20", "10.4.0.20", "10.2.0.66"
CK, SK = 0x1111222233334444, 0x5555666677778888


def frame(
    src, dst, sport, dport, flags="A", seq=1, ack=1, mptcp=None, payload=b"", ts=1000, ip_id=1
):
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (ts, 7))]
    if mptcp is not None:
        opts.append((30, mptcp[2:]))
    return bytes(
        Ether()
        / IP(src=src, dst=dst, id=ip_id)
        / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, options=opts)
        / payload
    )


def tap(*frames_, t0=100.0):
    return [(f, t0 + i * 0.01) for i, f in enumerate(frames_)]


def third_ack():
    return frame(A, B, 40000, 5201, mptcp=encode(MpCapable(1, 0x81, CK, SK)))


def only_mptcp(pkt):
    (opt,) = [v for k, v in pkt[TCP].options if k == 30]
    return parse_mptcp(bytes([30, len(opt) + 2]) + opt)


def test_the_eavesdropper_learns_keys_and_the_last_segment_of_each_subflow():
    k = attacks.learn(
        tap(
            third_ack(),
            frame(B, A, 5201, 40000, seq=5, ack=100),
            frame(B, A, 5201, 40000, seq=5, ack=900),
            frame(B2, A, 5201, 40001, seq=9, ack=50),
            frame(A, B, 40000, 5201, seq=900, payload=b"x" * 50),
        ),
        {A, A2},
        {B, B2},
    )
    assert (k.client_key, k.server_key, k.server_port) == (CK, SK, 5201)
    assert k.victim_key == CK and k.peer_key == SK
    assert set(k.last_from_peer) == {(B, 5201, A, 40000), (B2, 5201, A, 40001)}
    assert k.last_from_peer[(B, 5201, A, 40000)][TCP].ack == 900
    assert k.summary() == {"subflows_seen": 2, "keys_known": True, "recorded": 0}


def test_forgeries_rsts_and_other_protocols_teach_nothing():
    forged = frame(B, A, 5201, 40000, ip_id=attacks.TAG)
    rst = frame(B, A, 5201, 40000, flags="R")
    arp_like = b"\xff" * 12 + b"\x08\x06" + b"\x00" * 28
    k = attacks.learn(tap(forged, rst, arp_like, b"short"), {A}, {B})
    assert k.summary() == {"subflows_seen": 0, "keys_known": False, "recorded": 0}


def test_a_forged_option_follows_the_seen_segment_and_passes_paws():
    seen = Ether(frame(B, A, 5201, 40000, seq=77, ack=900, payload=b"y" * 10, ts=5000))
    seen.time = 100.0
    pkt = attacks.segment_after(seen, encode(RemoveAddr((1,))), now=100.5)
    ip, tcp = pkt[IP], pkt[TCP]
    assert (ip.src, ip.dst, ip.id) == (B, A, attacks.TAG)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, str(tcp.flags)) == (5201, 40000, 87, 900, "A")
    ts = dict(tcp.options)["Timestamp"]
    assert ts == (5000 + 500 + attacks.TS_AHEAD, 7)  # the sender's ms clock, extrapolated
    assert only_mptcp(pkt) == RemoveAddr((1,))


def test_the_clock_is_read_after_the_wait_for_a_lull(tmp_path):
    """The eavesdropper waits for the connection to go quiet; the forged timestamp is
    extrapolated to when it strikes, not to when it started waiting (PAWS would drop a
    timestamp older than the peer's latest)."""
    from scapy.utils import wrpcap

    seen = Ether(frame(B, A, 5201, 40000, ts=5000))
    seen.time = 100.0
    wrpcap(str(tmp_path / "tap.pcap"), [seen])
    clock = iter([99.95, 100.0, 100.05, 100.1, 100.15, 100.2, 100.25]).__next__
    args = argparse.Namespace(
        seed=1,
        victim=[A],
        peer=[B],
        strength="eavesdrop",
        tap=str(tmp_path / "tap.pcap"),
        attack="mp_prio",
        attacker=M,
        tuple=[],
    )
    (pkt,), _ = attacks.build(args, clock=clock, sleep=lambda s: None)
    ts = dict(pkt[TCP].options)["Timestamp"]
    assert ts == (5000 + 250 + attacks.TS_AHEAD, 7)  # quiet at 100.2, struck at 100.25


def test_the_seq_comes_from_the_ip_length_when_the_tap_cut_the_payload():
    full = frame(B, A, 5201, 40000, seq=10, payload=b"z" * 300)
    seen = Ether(full[:128])  # snaplen 128
    seen.time = 1.0
    assert attacks.segment_after(seen, encode(MpPrio(True)))[TCP].seq == 310


def test_each_option_attack_forges_its_option():
    k = attacks.learn(tap(third_ack(), frame(B, A, 5201, 40000)), {A}, {B})
    rng = random.Random(1)
    for attack, expected in (
        (
            "add_addr",
            AddAddr(
                attacks.ATTACKER_ADDR_ID, M, hmac=add_addr_hmac(SK, CK, attacks.ATTACKER_ADDR_ID, M)
            ),
        ),
        ("rm_addr", RemoveAddr(attacks.REMOVED_IDS)),
        ("mp_prio", MpPrio(True)),
        ("fastclose", MpFastclose(CK)),  # the receiver's (victim's) own key
    ):
        (pkt,) = attacks.option_attack(attack, k, M, rng, now=101.0)
        assert only_mptcp(pkt) == expected, attack


def test_a_blind_attacker_guesses_and_is_reproducible():
    k = attacks.Knowledge()
    t = (B, 5201, A, 40000)
    first = attacks.option_attack("fastclose", k, M, random.Random(7), tuples=[t])
    again = attacks.option_attack("fastclose", k, M, random.Random(7), tuples=[t])
    assert len(first) == attacks.BLIND_GUESSES
    assert [bytes(p) for p in first] == [bytes(p) for p in again]
    assert len({p[TCP].seq for p in first}) == attacks.BLIND_GUESSES
    assert (first[0][IP].src, first[0][TCP].dport) == (B, 40000)
    assert only_mptcp(first[0]) != MpFastclose(CK)


def test_the_join_flood_uses_the_peers_token_when_it_knows_the_keys():
    k = attacks.learn(tap(third_ack()), {A}, {B})
    syns = attacks.join_flood(k, [A], [B, B2], 5201, random.Random(3))
    assert len(syns) == attacks.FLOOD_SYNS
    for p in syns:
        join = only_mptcp(p)
        assert isinstance(join, MpJoin) and join.token == token_of(SK)
        assert str(p[TCP].flags) == "S" and p[IP].src == A and p[TCP].dport == 5201
    assert {p[IP].dst for p in syns} == {B, B2}
    blind = attacks.join_flood(attacks.Knowledge(), [A], [B], 5201, random.Random(3))
    assert only_mptcp(blind[0]).token != token_of(SK)


def test_four_tuples_parse_and_bad_ones_are_refused():
    assert attacks.parse_tuple("10.3.0.20:5201-10.2.0.10:40000") == (B, 5201, A, 40000)
    for bad in ("10.3.0.20:5201", "a:b-c:d", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="SRC:SPORT-DST:DPORT"):
            attacks.parse_tuple(bad)


def test_the_command_refuses_an_eavesdropper_without_a_tap(capsys):
    with pytest.raises(SystemExit) as e:
        attacks.main(
            ["rm_addr", "--strength", "eavesdrop", "--victim", A, "--peer", B, "--attacker", M]
        )
    assert e.value.code == 2 and "needs --tap" in capsys.readouterr().err


def test_the_eavesdropper_waits_for_a_lull_but_not_forever():
    clock = [100.0]
    reads = []

    def read():  # the peer keeps sending until t=100.4
        reads.append(clock[0])
        return tap(frame(B, A, 5201, 40000, ack=len(reads)), t0=min(clock[0], 100.4))

    def sleep(s):
        clock[0] += s

    k = attacks.eavesdrop(read, {A}, {B}, clock=lambda: clock[0], sleep=sleep)
    assert clock[0] - 100.4 >= attacks.QUIET and k.last_from_peer[(B, 5201, A, 40000)][TCP].ack > 1
    clock[0], reads[:] = 200.0, []
    busy = attacks.eavesdrop(
        lambda: tap(frame(B, A, 5201, 40000), t0=clock[0]),
        {A},
        {B},
        clock=lambda: clock[0],
        sleep=sleep,
    )
    assert (
        busy.last_from_peer and 200.0 + attacks.PATIENCE <= clock[0] < 200.0 + attacks.PATIENCE + 1
    )


def test_keys_seen_from_the_peers_side_make_the_victim_the_server():
    # The victim (B) accepted the connection: the client's third ACK comes from A.
    k = attacks.learn(tap(third_ack()), {B}, {A})
    assert (k.victim_key, k.peer_key) == (SK, CK)


def test_a_growing_tap_is_read_on_from_where_it_stopped(tmp_path):
    """The forger's tap: each read gives what tcpdump wrote since, a record still half
    written waits, and what is learnt piece by piece is what a whole read teaches."""
    from scapy.utils import PcapWriter

    path = tmp_path / "tap.pcap"
    first = [third_ack(), frame(B, A, 5201, 40000, seq=10)]
    later = [frame(B, A, 5201, 40000, seq=20), frame(B2, A, 5201, 40001, seq=5)]
    follow = attacks.TapFollower(str(path))
    assert follow() == []  # no file yet
    writer = PcapWriter(str(path), sync=True)
    for f in first:
        writer.write(Ether(f))
    got = follow()
    assert [f for f, _ in got] == first and follow() == []
    writer.close()

    def record(raw: bytes) -> bytes:  # a pcap record header (little endian, as written)
        return (1).to_bytes(4, "little") * 2 + len(raw).to_bytes(4, "little") * 2 + raw

    half = record(later[0])
    with path.open("ab") as out:  # half of a record: its header and part of the frame
        out.write(half[:26])
    assert follow() == []
    with path.open("ab") as out:
        out.write(half[26:] + record(later[1]))
    assert [f for f, _ in follow()] == later
    follow.close()
    learner = attacks.Learner({A}, {B, B2})
    learner.feed([(f, 0.0) for f in first]).feed([(f, 0.0) for f in later])
    whole = attacks.learn([(f, 0.0) for f in first + later], {A}, {B, B2})
    piecewise = learner.knowledge()
    assert (piecewise.client_key, piecewise.server_key) == (whole.client_key, whole.server_key)
    assert {t: bytes(p) for t, p in piecewise.last_from_peer.items()} == {
        t: bytes(p) for t, p in whole.last_from_peer.items()
    }


def test_a_claim_is_an_addr_trust_the_peer_believes():
    """The claim (the eavesdropper's ADDR_TRUST for the address it sits by, in the
    client's name, to the server) verifies under the server's keys: with no other claim
    from the client, the server marks the address trusted when the opening ends."""
    k = attacks.learn(tap(third_ack(), frame(A, B, 40000, 5201, seq=3, ack=4)), {B}, {A})
    assert (k.victim_key, k.peer_key) == (SK, CK)
    ((four, seen),) = k.last_from_peer.items()
    option = attacks.claim_for(seen, k, attacks.CLAIM_COUNTER)
    (pkt,) = attacks.option_attack("mp_prio", k, M, random.Random(1))  # where it goes
    claim = IP(bytes(attacks.segment_after(seen, option)))
    assert (claim[IP].src, claim[IP].dst) == (A, B) == (pkt[IP].src, pkt[IP].dst)
    (opt,) = mptcp_options(bytes(claim[TCP])[20 : claim[TCP].dataofs * 4])[-1:]
    assert isinstance(opt, AddrTrust) and opt.counter == attacks.CLAIM_COUNTER
    server = Extension({B: 1, B2: 2})
    server.on_trust({B: 30}, now=0)
    server.on_copy((B, 5201, A, 40000), 0x12, [MpCapable(1, 0, SK)], now=0)
    server.on_copy((A, 40000, B, 5201), 0x10, [MpCapable(1, 0, CK, SK)], now=0)
    kw = dict(saddr=B, daddr=A, sport=5201, dport=40000, server_side=True)
    server.on_event(Event(EventKind.CREATED, token_of(SK), **kw), 0)
    server.on_event(Event(EventKind.ESTABLISHED, token_of(SK), **kw), 0)
    server.on_addr_trust(four, opt, 0.01)  # held for the opening: about the first address
    server.tick(0.6)
    assert server.tpbt.trusted(token_of(SK), B, A, 0.6)  # no other claim came: believed
    assert attacks.claim_for(seen, attacks.Knowledge(), 1) is None  # no keys, no claim


def test_control_options_are_kept_as_sent_and_a_broken_area_gives_none():
    add = encode(AddAddr(1, A2, trust=True, hmac=b"\x01" * 8))
    trust = encode(AddrTrust(1, 7, 30, b"\x02" * 8))
    dss = bytes([30, 8, 0x20, 0x01, 0, 0, 0, 5])
    area = b"\x01\x01" + dss + add + trust
    assert attacks.control_options(area, {0x3, 0x9}) == [add, trust]
    assert attacks.control_options(area, {0x4}) == []
    assert attacks.control_options(add[:5], {0x3}) == []  # its length runs past the area


def test_the_replaying_eavesdropper_records_what_the_peer_sent_once_each():
    note = encode(AddrTrust(1, 7, 30, b"\x02" * 8))
    rm = encode(RemoveAddr((2,)))
    k = attacks.learn(
        tap(
            third_ack(),
            frame(B, A, 5201, 40000, seq=5, mptcp=note),
            frame(B, A, 5201, 40000, seq=5, mptcp=note),  # a retransmission
            frame(B2, A, 5201, 40001, seq=9, mptcp=rm),
            frame(A, B, 40000, 5201, mptcp=encode(RemoveAddr((1,)))),
        ),  # the victim's
        {A, A2},
        {B, B2},
    )
    assert k.recorded == [((B, 5201, A, 40000), note), ((B2, 5201, A, 40001), rm)]
    assert k.summary()["recorded"] == 2


def test_a_replay_resends_the_recorded_bytes_after_the_latest_segment(tmp_path):
    from experiments import forger

    note = encode(AddrTrust(1, 7, 30, b"\x02" * 8))
    old = frame(B, A, 5201, 40000, seq=5, mptcp=note, ts=1000)
    k = attacks.learn(
        tap(third_ack(), old, frame(B, A, 5201, 40000, seq=500, ts=1400)), {A, A2}, {B, B2}
    )
    (pkt,) = forger.forge("replay", "plain", k, None, random.Random(1), {}, now=100.05)
    assert pkt[TCP].seq == 500 and pkt[TCP].options[2][1][0] > 1400  # current, past PAWS
    (option,) = [bytes([30, len(v) + 2]) + v for kind, v in pkt[TCP].options if kind == 30]
    assert option == note  # the bytes as recorded
    # From a record tap (a path it reads): the subflow's latest segment is found there.
    recorded = attacks.learn(tap(frame(B2, A2, 5201, 40001, seq=70, mptcp=note)), {A, A2}, {B, B2})
    packets = forger.forge(
        "replay",
        "plain",
        attacks.Knowledge(),
        None,
        random.Random(1),
        {},
        now=100.0,
        recorded=recorded,
    )
    assert [(p[IP].src, p[TCP].seq) for p in packets] == [(B2, 70)]
    nothing = attacks.Knowledge(recorded=[((B, 5201, A, 40000), note)])  # subflow never seen
    assert forger.forge("replay", "plain", nothing, None, random.Random(1), {}, now=100.0) == []


def test_own_connection_claims_verify_on_that_connection_only():
    """Made with the attacker's own keys (it is the client of its own connection), each
    message is right for that connection; the withdrawal over the protected address and
    the notification name addresses the victim can only tie to that connection."""
    from hosts.options import addr_trust_hmac

    k = attacks.Knowledge(client_key=CK, server_key=SK, victim_is_client=False)
    t_unprot, t_prot, note, w_prot, w_own = (
        parse_mptcp(o) for o in attacks.own_connection_claims(k, M, B, A2, A, 2**31)
    )
    assert (t_unprot.address, t_unprot.trust, t_prot.address) == (A, True, A2)
    assert t_unprot.hmac == add_addr_hmac(CK, SK, t_unprot.addr_id, A, trust=True)
    assert note.addr_id == attacks.PROTECTED_ADDR_ID and not note.withdraw
    assert note.hmac == addr_trust_hmac(CK, SK, note, M, M, B)  # credits its own source
    assert w_prot.withdraw and w_prot.hmac == addr_trust_hmac(CK, SK, w_prot, A2, M, B)
    assert w_own.hmac == addr_trust_hmac(CK, SK, w_own, M, M, B)
    assert note.counter < w_prot.counter < w_own.counter
    assert attacks.own_connection_claims(attacks.Knowledge(), M, B, A2, A, 1) == []


def test_what_a_replay_resends_is_named_with_the_agents_subtype():
    from experiments import forger

    trust = encode(AddrTrust(1, 7, 30, b"\x02" * 8), 0xA)
    add = encode(AddAddr(1, A2, trust=True, hmac=b"\x01" * 8))
    k = attacks.Knowledge(recorded=[((B, 5201, A, 1), trust), ((B, 5201, A, 1), add)])
    assert forger.describe(k, None, 0xA) == "AddAddr-trust:1 AddrTrust:1"


A6, B6 = "2001:db8:2::10", "2001:db8:4::20"


def frame6(src, dst, sport, dport, seq=1, ack=1, payload=b"", flow_label=0):
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (1000, 7))]
    return bytes(
        Ether(dst="00:00:00:00:0a:02")
        / IPv6(src=src, dst=dst, fl=flow_label)
        / TCP(sport=sport, dport=dport, flags="A", seq=seq, ack=ack, options=opts)
        / payload
    )


def test_an_ipv6_eavesdropper_learns_and_forges_in_ipv6():
    """IPv6 subflows are learnt like IPv4 ones; a forgery carries the tag in its flow
    label (IPv6 has no IP ID), and the tap's own forgeries teach nothing."""
    full = frame6(B6, A6, 5201, 40000, seq=10, ack=900, payload=b"z" * 300)
    forged = frame6(B6, A6, 5201, 40001, flow_label=attacks.TAG)
    k = attacks.learn(tap(full[:128], forged), {A6}, {B6})  # snaplen 128: payload cut
    assert set(k.last_from_peer) == {(B6, 5201, A6, 40000)}
    (pkt,) = attacks.option_attack("rm_addr", k, M, random.Random(1), now=101.0)
    ip = pkt[IPv6]
    assert (ip.src, ip.dst, ip.fl) == (B6, A6, attacks.TAG)
    assert (pkt[TCP].seq, pkt[TCP].ack) == (310, 900)  # the seq from IPv6's payload length
    assert only_mptcp(pkt) == RemoveAddr(attacks.REMOVED_IDS)
    assert attacks.is_forged(bytes(pkt)) and not attacks.is_forged(full[14:])


def test_blind_guesses_and_floods_take_the_family_of_their_addresses():
    rng = random.Random(1)
    (guess, *_) = attacks.option_attack(
        "mp_prio", attacks.Knowledge(), M, rng, tuples=[(B6, 5201, A6, 40000)]
    )
    assert IPv6 in guess and guess[IPv6].fl == attacks.TAG
    flood = attacks.join_flood(attacks.Knowledge(), [A6], [B6], 5201, rng)
    assert all(IPv6 in p and p[IPv6].src == A6 and p[TCP].flags == "S" for p in flood)
