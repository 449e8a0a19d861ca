"""The NFQUEUE rewriting as pure functions: what leaves, what moves, what is refused."""

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from experiments.shapes import DSS_ACK_ONLY
from hosts.extension import Verdict
from hosts.options import (
    AddAddr,
    MpJoin,
    RemoveAddr,
    add_addr_hmac,
    encode,
    mptcp_options,
    tcp_options,
)
from hosts.rewrite import judge_incoming, plan_outgoing
from hosts.segment import parse
from tests.unit.test_extension import (
    A1,
    A2,
    B1,
    B2,
    KA,
    KB,
    TA,
    TB,
    client,
    client_keys,
    establish,
    ev,
    msg,
    server,
    server_keys,
    trust_from_b,
)

SUB = 0x9
UNTRUSTED_OUT, TRUSTED_OUT = (A2, 40000, B1, 5201), (A1, 1, B1, 5201)


def segment(four, options: list[bytes], flags="A", payload=b"") -> bytes:
    src, sport, dst, dport = four
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))] + [(o[0], o[2:]) for o in options]
    pkt = IP(src=src, dst=dst) / TCP(
        sport=sport, dport=dport, flags=flags, seq=100, ack=200, options=opts
    )
    if payload:
        pkt = pkt / Raw(payload)
    return bytes(pkt)


def connected_client():
    ext = client()
    client_keys(ext, UNTRUSTED_OUT)
    establish(ext, TA, A2, B1)
    ext.on_event(ev("sub_established", TA, saddr=A1, daddr=B1, sport=1, dport=5201), 0.1)
    trust_from_b(ext, to=(A1, 1), now=0.2)
    return ext


def subtypes(raw: bytes) -> list[int]:
    return [o[2] >> 4 for k, o in tcp_options(parse(raw).options) if k == 30]


def test_a_signal_on_an_untrusted_subflow_moves_to_the_trusted_one():
    ext = connected_client()
    rm = encode(RemoveAddr((2,)))
    raw = segment(UNTRUSTED_OUT, [DSS_ACK_ONLY, rm])  # RM_ADDR behind DSS, as Linux sends it
    plan = plan_outgoing(raw, parse(raw), ext, 0.3, [], SUB)
    assert plan.verdict is Verdict.ACCEPT and plan.moved == ((TRUSTED_OUT, rm),)
    assert subtypes(plan.packet) == [2]  # the data ACK stays where it was
    add = encode(AddAddr(1, A1, hmac=b"k" * 8))
    raw = segment(UNTRUSTED_OUT, [add])
    plan = plan_outgoing(raw, parse(raw), ext, 0.3, [], SUB)
    assert plan.verdict is Verdict.DROP  # it carried only the signal
    ((target, moved),) = plan.moved
    assert target == TRUSTED_OUT
    (sent,) = mptcp_options(moved)
    assert sent.trust and sent.hmac == add_addr_hmac(KA, KB, 1, A1, trust=True)
    assert ext.counters.relocated == 2


def test_signals_on_the_trusted_subflow_stay_and_mp_prio_is_not_moved():
    ext = connected_client()
    raw = segment(TRUSTED_OUT, [DSS_ACK_ONLY, encode(RemoveAddr((2,)))])
    plan = plan_outgoing(raw, parse(raw), ext, 0.3, [], SUB)
    assert plan.moved == () and plan.packet is None
    prio = bytes([30, 3, 0x51])
    raw = segment(UNTRUSTED_OUT, [DSS_ACK_ONLY, prio])
    plan = plan_outgoing(raw, parse(raw), ext, 0.3, [], SUB)
    assert plan.moved == () and plan.packet is None


def test_carried_options_ride_a_pure_ack_or_follow_a_data_segment():
    ext = connected_client()
    note = encode(msg(KA, KB, 1, 1, A1, B1), SUB)
    raw = segment(TRUSTED_OUT, [DSS_ACK_ONLY])
    plan = plan_outgoing(raw, parse(raw), ext, 0.3, [note], SUB)
    assert subtypes(plan.packet) == [SUB, 2] and plan.injected == ()
    data = segment(TRUSTED_OUT, [DSS_ACK_ONLY], flags="PA", payload=b"x" * 100)
    plan = plan_outgoing(data, parse(data), ext, 0.3, [note], SUB)
    assert plan.packet is None
    (empty,) = plan.injected
    seg = parse(empty)
    assert seg.payload_len == 0 and seg.flags == 0x10 and subtypes(empty) == [SUB]
    assert int.from_bytes(empty[24:28], "big") == 100 + 100  # right behind the data


def test_an_option_too_long_for_the_timestamps_rides_an_ack_without_them():
    """IPv6 ADD_ADDR with HMAC (28 bytes) fills the 40 bytes beside the timestamps; with
    a port (30 bytes) it does not fit, and goes alone."""
    ext = connected_client()
    v6 = encode(AddAddr(3, "2001:db8:1::10", hmac=b"k" * 8))
    with_port = encode(AddAddr(3, "2001:db8:1::10", port=5201, hmac=b"k" * 8))
    assert (len(v6), len(with_port)) == (28, 30)
    data = segment(TRUSTED_OUT, [DSS_ACK_ONLY], flags="PA", payload=b"x" * 100)
    plan = plan_outgoing(data, parse(data), ext, 0.3, [v6, with_port], SUB)
    fits, alone = ([kind for kind, _ in tcp_options(parse(p).options)] for p in plan.injected)
    assert fits == [8, 30] and alone == [30]


def test_our_own_unparsable_options_leave_unchanged_and_are_reported():
    ext = connected_client()
    raw = bytearray(segment(UNTRUSTED_OUT, [DSS_ACK_ONLY]))
    raw[20 + 20 + 12 + 1] = 0x7F  # DSS length past the header
    plan = plan_outgoing(bytes(raw), parse(bytes(raw)), ext, 0.3, [], SUB)
    assert plan.verdict is Verdict.ACCEPT and plan.packet is None and plan.problem


def test_incoming_unparsable_options_are_refused():
    srv = server()
    raw = bytearray(segment((A2, 40000, B1, 5201), [encode(AddAddr(1, A1, hmac=b"k" * 8))]))
    raw[20 + 20 + 12 + 1] = 9  # an ADD_ADDR of 9 bytes: no such layout
    result = judge_incoming(bytes(raw), parse(bytes(raw)), srv, 1, SUB)
    assert result.decision.verdict is Verdict.DROP


def test_incoming_t_flagged_add_addr_anywhere_is_translated():
    srv = server()
    server_keys(srv, (B1, 5201, A2, 40000))
    establish(srv, TB, B1, A2, sport=5201, dport=40000, server=True)
    add = encode(AddAddr(1, A1, trust=True, hmac=add_addr_hmac(KA, KB, 1, A1, trust=True)))
    raw = segment((A2, 40000, B1, 5201), [DSS_ACK_ONLY, add])
    result = judge_incoming(raw, parse(raw), srv, 1, SUB)
    assert result.decision.verdict is Verdict.ACCEPT
    dss, std = mptcp_options(parse(result.packet).options)
    assert not std.trust and std.hmac == add_addr_hmac(KA, KB, 1, A1)


def test_incoming_join_syns_follow_the_policy():
    srv = server(enforce=True)
    server_keys(srv, (B1, 5201, A2, 40000))
    establish(srv, TB, B1, A2, sport=5201, dport=40000, server=True)
    join = encode(MpJoin(False, addr_id=1, token=TB, nonce=5))
    raw = bytes(IP(src=A2, dst=B1) / TCP(sport=9, dport=5201, flags="S", options=[(30, join[2:])]))
    result = judge_incoming(raw, parse(raw), srv, 1, SUB)
    assert result.decision.verdict is Verdict.DROP  # the pair A2-B1 has the first subflow
    raw = bytes(IP(src=A2, dst=B2) / TCP(sport=9, dport=5201, flags="S", options=[(30, join[2:])]))
    assert judge_incoming(raw, parse(raw), srv, 1, SUB).decision.verdict is Verdict.ACCEPT
