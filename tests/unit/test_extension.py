"""The extension's decisions, driven like the agent drives them, without a kernel."""

import pytest

from hosts.events import Event, EventKind
from hosts.extension import (
    EARLY_LIFETIME,
    EARLY_PER_SUBFLOW,
    JOIN_PER_SOURCE,
    MAX_CONNS,
    ORPHAN_LIFETIME,
    PENDING_JOINS,
    PENDING_KEYS,
    Announce,
    Carry,
    CreateSubflow,
    Extension,
    Scope,
    Verdict,
)
from hosts.options import (
    AddAddr,
    AddrTrust,
    MpCapable,
    MpJoin,
    add_addr_hmac,
    addr_trust_hmac,
    signed_addr_trust,
    token_of,
)

A1, A2, B1, B2 = "10.1.0.10", "10.2.0.10", "10.3.0.20", "10.4.0.20"
KA, KB = 0x1111111111111111, 0x2222222222222222  # a's and b's MP_CAPABLE keys
TA, TB = token_of(KA), token_of(KB)
ACK, SYN, SYNACK = 0x10, 0x02, 0x12


def ev(kind, token, **kw):
    return Event(EventKind(kind), token, **kw)


def client(enforce=False, **kw) -> Extension:
    ext = Extension({A1: 1, A2: 2}, enforce=enforce, **kw)
    ext.on_trust({A1: 30}, now=0)
    return ext


def server(enforce=False) -> Extension:
    ext = Extension({B1: 1, B2: 2}, enforce=enforce)
    ext.on_trust({B1: 30}, now=0)
    return ext


def client_keys(ext, first=(A1, 40000, B1, 5201), now=0.0):
    """Our third ACK as the sniffer copies it: we are the client, both keys."""
    return ext.on_copy(first, ACK, [MpCapable(1, 0, KA, KB)], now)


def server_keys(ext, first=(B1, 5201, A1, 40000), now=0.0):
    """Our SYN/ACK offers b's key, then a's third ACK names it."""
    ext.on_copy(first, SYNACK, [MpCapable(1, 0, KB)], now)
    seen = (first[2], first[3], first[0], first[1])
    return ext.on_copy(seen, ACK, [MpCapable(1, 0, KA, KB)], now)


def establish(ext, token, saddr, daddr, sport=40000, dport=5201, server=False, now=0.0):
    kw = dict(saddr=saddr, daddr=daddr, sport=sport, dport=dport, server_side=server)
    created = ext.on_event(ev("created", token, **kw), now)
    return created + ext.on_event(ev("established", token, **kw), now)


def msg(
    sender_key,
    receiver_key,
    addr_id,
    counter,
    src,
    dst,
    address=None,
    lifetime=6,
    echo=False,
    withdraw=False,
) -> AddrTrust:
    """An ADDR_TRUST as the peer's agent signs it, carried from ``src`` to ``dst``."""
    unsigned = AddrTrust(addr_id, counter, lifetime, b"", echo, withdraw)
    return signed_addr_trust(sender_key, receiver_key, unsigned, address or src, src, dst)


def trust_from_b(ext, to=(A1, 40000), now=1.0, counter=1):
    """b's notification for B1 arrives on the subflow B1 -> ``to``."""
    return ext.on_addr_trust((B1, 5201, *to), msg(KB, KA, 1, counter, B1, to[0]), now)


def test_client_opens_the_trusted_subflow_first_and_notifies_on_it():
    ext = client()
    client_keys(ext, (A2, 40000, B1, 5201))
    actions = establish(ext, TA, A2, B1)  # the application bound the untrusted address
    assert actions[0] == CreateSubflow(TA, 1, A1, B1, 5201)
    assert not any(isinstance(a, Announce) for a in actions)  # held: no trusted subflow yet
    assert not any(isinstance(a, Carry) for a in actions)  # nothing from A1 yet
    carry = ext.on_event(ev("sub_established", TA, saddr=A1, daddr=B1, sport=1, dport=5201), 0)
    (note,) = [a for a in carry if isinstance(a, Carry)]
    assert note.subflow == (A1, 1, B1, 5201)  # to the application's destination
    assert note.option == msg(KA, KB, 1, 1, A1, B1, lifetime=30)


def test_announcements_wait_for_a_trusted_subflow_then_get_t():
    ext = client()
    client_keys(ext)
    establish(ext, TA, A2, B1)
    ext.on_event(ev("sub_established", TA, saddr=A1, daddr=B1, sport=1, dport=5201), 0.1)
    assert not any(isinstance(a, Announce) for a in ext.tick(now=0.5))
    actions = trust_from_b(ext, to=(A1, 1), now=0.6)
    assert Announce(TA, 1, A1) in actions
    out = ext.outgoing_add_addr((A2, 40000, B1, 5201), AddAddr(1, A1, hmac=b"k" * 8), 0.8)
    assert out.trust and out.hmac == add_addr_hmac(KA, KB, 1, A1, trust=True)
    # The kernel picks the oldest (untrusted) subflow: the rewriter moves it.
    assert ext.relocation((A2, 40000, B1, 5201), 0.8) == (A1, 1, B1, 5201)
    assert ext.relocation((A1, 1, B1, 5201), 0.8) is None
    assert ext.counters.announce_fallback == 0


def test_a_vanilla_peer_gets_plain_announcements_when_the_hold_ends():
    ext = client(announce_wait=1.0)
    client_keys(ext)
    establish(ext, TA, A2, B1)
    assert Announce(TA, 1, A1) in ext.tick(now=1.1)
    assert ext.counters.announce_fallback == 1
    assert ext.outgoing_add_addr((A2, 40000, B1, 5201), AddAddr(1, A1, hmac=b"k" * 8), 1.2) is None


def test_the_server_notifies_only_on_a_trusted_subflow_or_when_the_hold_ends():
    srv = server()
    server_keys(srv, (B1, 5201, A2, 40000))
    actions = establish(srv, TB, B1, A2, sport=5201, dport=40000, server=True)
    assert not any(isinstance(a, Carry) for a in actions)  # a's address is not trusted
    assert not any(isinstance(a, Announce) for a in actions)  # held
    srv.on_event(ev("sub_established", TB, saddr=B1, daddr=A1, sport=5201, dport=1), 0.1)
    # a's notification on the new subflow: b answers on it (the echo) and announces.
    note = msg(KA, KB, 1, 1, A1, B1, lifetime=30)
    actions = srv.on_addr_trust((A1, 1, B1, 5201), note, 0.2)
    carries = [a for a in actions if isinstance(a, Carry)]
    assert carries and all(c.subflow == (B1, 5201, A1, 1) for c in carries)
    assert carries[0].option.echo
    assert Announce(TB, 2, B2) in actions
    assert srv.counters.trust_fallback == 0


def test_without_a_trusted_peer_the_server_falls_back_after_the_hold():
    srv = server()
    server_keys(srv, (B1, 5201, A2, 40000))
    establish(srv, TB, B1, A2, sport=5201, dport=40000, server=True)
    actions = srv.tick(now=1.5)
    assert any(isinstance(a, Carry) and a.subflow[2] == A2 for a in actions)
    assert Announce(TB, 2, B2) in actions
    assert srv.counters.trust_fallback == 1 and srv.counters.announce_fallback == 1


def test_peer_notification_is_verified_and_answered():
    ext = client()
    client_keys(ext)
    establish(ext, TA, A1, B1)
    incoming = (B1, 5201, A1, 40000)
    assert ext.on_addr_trust(incoming, AddrTrust(1, 1, 6, b"\0" * 8), now=1) == []
    assert ext.counters.addr_trust_bad_hmac == 1 and not ext.tpbt.remote_trusted(TA, B1, 1)
    actions = trust_from_b(ext, now=1)
    assert ext.tpbt.remote_trusted(TA, B1, 1) and ext.tpbt.trusted(TA, A1, B1, 1)
    (answer,) = [a for a in actions if isinstance(a, Carry)]
    assert answer.option.echo and answer.option.addr_id == 1 and answer.subflow[0] == A1
    assert answer.option.hmac == addr_trust_hmac(KA, KB, answer.option, A1, A1, B1)
    assert not ext.tpbt.remote_trusted(TA, B1, 1 + ext.ttl)  # it expires unless refreshed
    # The same message again (a replay), or an older one: refused and counted.
    assert trust_from_b(ext, now=2) == [] and ext.counters.addr_trust_replayed == 1
    assert not ext.tpbt.remote_trusted(TA, B1, 1 + ext.ttl)


def test_incoming_trusted_add_addr_is_translated_or_refused():
    srv = server()
    server_keys(srv, (B1, 5201, A2, 40000))
    establish(srv, TB, B1, A2, sport=5201, dport=40000, server=True)
    incoming = (A2, 40000, B1, 5201)
    bad = AddAddr(1, A1, trust=True, hmac=b"\0" * 8)
    assert srv.incoming_add_addr(incoming, bad, 1).verdict is Verdict.DROP
    good = AddAddr(1, A1, trust=True, hmac=add_addr_hmac(KA, KB, 1, A1, trust=True))
    decision = srv.incoming_add_addr(incoming, good, 1)
    assert decision.verdict is Verdict.ACCEPT and not decision.replacement.trust
    assert decision.replacement.hmac == add_addr_hmac(KA, KB, 1, A1)  # what b's kernel checks
    # The claim ties A1 to the connection but credits no trust (no freshness in ADD_ADDR).
    assert A1 in srv.conns[TB].t_accepted and not srv.tpbt.remote_trusted(TB, A1, 1)
    plain = srv.incoming_add_addr(incoming, AddAddr(2, B2, hmac=b"x" * 8), 1)
    assert plain.verdict is Verdict.ACCEPT and plain.replacement is None


def test_keys_come_only_from_our_own_handshake_segments():
    srv = server()
    # A flood of forged third ACKs naming keys we never offered: nothing is kept.
    for i in range(5000):
        srv.on_copy((A2, 1000 + i, B1, 5201), ACK, [MpCapable(1, 0, i + 1, i + 7)], 0)
    assert srv.counters.keys_unverified == 5000 and len(srv.pending_keys) == 0
    # The real handshake still gives the keys.
    server_keys(srv, (B1, 5201, A2, 40000), now=0.1)
    establish(srv, TB, B1, A2, sport=5201, dport=40000, server=True, now=0.1)
    assert srv.conns[TB].keys
    # A third ACK that names our key but arrives on another 4-tuple is not believed.
    other = Extension({B1: 1})
    other.on_copy((B1, 5201, A2, 40000), SYNACK, [MpCapable(1, 0, KB)], 0)
    other.on_copy((A2, 41000, B1, 5201), ACK, [MpCapable(1, 0, KA, KB)], 0)
    assert other.counters.keys_unverified == 1


def test_tables_stay_bounded_under_a_flood_of_handshakes():
    ext = client()
    for i in range(3 * PENDING_KEYS):  # our own kernel's handshakes, for connections
        ext.on_copy((A1, i, B1, 5201), ACK, [MpCapable(1, 0, 10**6 + i, 7)], 0)
    assert len(ext.pending_keys) == PENDING_KEYS and ext.pending_keys.evicted > 0
    establish(ext, TA, A1, B1)
    for i in range(3 * PENDING_JOINS):  # join SYNs for our token from everywhere
        ext.on_copy(
            (f"10.9.{i // 250}.{i % 250}", i, A1, 40000),
            SYN,
            [MpJoin(False, 1, token=TA, nonce=i)],
            0,
        )
    assert len(ext.pending_joins) == PENDING_JOINS
    ext.tick(now=100)  # everything expires
    assert len(ext.pending_keys) == len(ext.pending_joins) == 0
    for i in range(MAX_CONNS + 5):
        ext.on_event(ev("created", i + 1, saddr=A1, daddr=B1, sport=i, dport=5201), 101)
    assert len(ext.conns) == MAX_CONNS and ext.counters.conns_evicted >= 5


def test_a_connection_whose_closed_event_was_lost_expires():
    ext = client()
    client_keys(ext)
    establish(ext, TA, A1, B1)
    ext.on_event(ev("sub_closed", TA, saddr=A1, daddr=B1, sport=40000, dport=5201), 1)
    ext.tick(now=1000)
    assert TA not in ext.conns


def enforcing_client():
    ext = client(enforce=True)
    client_keys(ext, (A2, 40000, B1, 5201))
    establish(ext, TA, A2, B1)
    ext.on_event(ev("sub_established", TA, saddr=A1, daddr=B1, sport=1, dport=5201), 0.1)
    return ext


def test_guarded_scope_starts_with_the_first_trusted_subflow_and_stays():
    ext = enforcing_client()
    untrusted_in = (B1, 5201, A2, 40000)
    trust_from_b(ext, to=(A1, 1), now=0.3)
    assert ext.guarded(0.3) == {(A2, 40000, B1, 5201): Scope.GUARDED}
    assert ext.scope_of(untrusted_in, 0.3) is Scope.GUARDED
    assert not ext.guarded_scope((B1, 5201, A1, 1), 0.3)  # the trusted subflow
    assert ext.lifted(0.3) == {(A1, 1, B1, 5201)}  # out of the classifier's own opening
    # Trust information lapses (the controller is away): every subflow is guarded now.
    ext.on_trust({}, now=0.4)
    assert ext.guarded(0.4) == dict.fromkeys(
        [(A2, 40000, B1, 5201), (A1, 1, B1, 5201)], Scope.GUARDED
    )
    vanilla = client()
    client_keys(vanilla)
    establish(vanilla, TA, A2, B1)
    assert vanilla.guarded(0.1) == {} and vanilla.lifted(0.1) == set()


def test_a_connection_is_in_scope_from_its_syn_until_trust_comes_or_the_opening_ends():
    ext = client(enforce=True)
    first = (A2, 40000, B1, 5201)
    ext.on_copy(first, SYN, [MpCapable(1, 0)], now=0.0)  # our SYN, as the tap copies it
    assert ext.guarded(0.01) == {first: Scope.OPENING}
    client_keys(ext, first, now=0.01)
    establish(ext, TA, A2, B1, now=0.01)
    assert ext.scope_of((B1, 5201, A2, 40000), 0.2) is Scope.OPENING
    ext.on_event(ev("sub_established", TA, saddr=A1, daddr=B1, sport=1, dport=5201), 0.02)
    assert ext.guarded(0.02) == dict.fromkeys([first, (A1, 1, B1, 5201)], Scope.OPENING)
    # ADDR_TRUST starts the trusted subflow: it is taken in the opening; ADD_ADDR is not.
    forged = AddAddr(3, "10.2.0.66", hmac=add_addr_hmac(KB, KA, 3, "10.2.0.66"))
    assert ext.incoming_add_addr((B1, 5201, A2, 40000), forged, 0.03).verdict is Verdict.DROP
    trust_from_b(ext, to=(A1, 1), now=0.03)
    assert ext.guarded(0.03) == {first: Scope.GUARDED}
    # Without a trusted subflow the opening ends (the fallback), well within the hold.
    other = client(enforce=True)
    client_keys(other, first)
    establish(other, TA, A2, B1)
    assert other.guarded(0.49) == {first: Scope.OPENING}
    assert other.guarded(0.5) == {}
    # A host with no trusted address expects no trusted subflow: nothing in scope.
    bare = Extension({A1: 1, A2: 2}, enforce=True)
    bare.on_copy(first, SYN, [MpCapable(1, 0)], now=0.0)
    client_keys(bare, first)
    establish(bare, TA, A2, B1)
    assert bare.guarded(0.1) == {}
    with pytest.raises(ValueError, match="shorter than the hold"):
        Extension({A1: 1}, opening_guard=1.0)


def test_joins_are_in_scope_from_their_syn_and_closed_subflows_stay():
    ext = enforcing_client()
    trust_from_b(ext, to=(A1, 1), now=0.3)
    late = (A2, 40001, B2, 5201)
    ext.on_copy(late, SYN, [MpJoin(False, addr_id=2, token=TB, nonce=1)], now=0.6)
    assert ext.guarded(0.6)[late] is Scope.GUARDED  # before the kernel reports it up
    ext.on_event(ev("sub_established", TA, saddr=A2, daddr=B2, sport=40001, dport=5201), 0.7)
    ext.on_event(ev("sub_closed", TA, saddr=A2, daddr=B1, sport=40000, dport=5201), 0.8)
    # A forged FIN half-closed it: the kernel's socket still reads what arrives there.
    assert ext.guarded(0.9) == dict.fromkeys([late, (A2, 40000, B1, 5201)], Scope.GUARDED)
    ext.on_event(ev("closed", TA), 1.0)
    assert ext.guarded(1.0) == {}


def test_guarded_scope_refuses_the_extensions_own_options_too():
    ext = enforcing_client()
    trust_from_b(ext, to=(A1, 1), now=0.3)
    untrusted_in = (B1, 5201, A2, 40000)
    withdrawal = msg(KB, KA, 1, 2, B1, A2, lifetime=0, withdraw=True)
    assert ext.on_addr_trust(untrusted_in, withdrawal, 0.5) == []
    assert ext.tpbt.remote_trusted(TA, B1, 0.5) and ext.counters.addr_trust_guarded == 1
    add = AddAddr(3, B2, hmac=add_addr_hmac(KB, KA, 3, B2))
    assert ext.incoming_add_addr(untrusted_in, add, 0.5).verdict is Verdict.DROP


def test_join_policy():
    srv = server(enforce=True)
    server_keys(srv, (B1, 5201, A2, 40000))
    establish(srv, TB, B1, A2, sport=5201, dport=40000, server=True)
    assert srv.join_syn((A1, 1, B1, 5201), 0xDEAD, 0).verdict is Verdict.ACCEPT  # not ours
    # Before any trusted subflow: a new address may join (how the trusted one starts).
    assert srv.join_syn((A1, 1, B1, 5201), TB, 0.1).verdict is Verdict.ACCEPT
    srv.on_event(ev("sub_established", TB, saddr=B1, daddr=A1, sport=5201, dport=1), 0.1)
    srv.on_addr_trust((A1, 1, B1, 5201), msg(KA, KB, 1, 1, A1, B1), 0.2)
    # The flood: joins on pairs that have a subflow, from an unknown address, too many.
    assert srv.join_syn((A2, 2, B1, 5201), TB, 0.3).reason.startswith("join on an address pair")
    assert srv.join_syn((A1, 3, B1, 5201), TB, 0.3).verdict is Verdict.DROP
    assert srv.join_syn(("10.2.0.66", 4, B2, 5201), TB, 0.3).verdict is Verdict.DROP
    assert srv.counters.join_refused_address == 1
    # Announced over the trusted subflow: that address may join.
    srv.incoming_add_addr((A1, 1, B1, 5201), AddAddr(3, "10.5.0.10", hmac=b"h" * 8), 0.3)
    assert srv.join_syn(("10.5.0.10", 5, B2, 5201), TB, 0.4).verdict is Verdict.ACCEPT
    assert srv.join_syn((A2, 6, B2, 5201), TB, 0.4).verdict is Verdict.ACCEPT
    burst = [srv.join_syn((A2, 7 + i, B2, 5201), TB, 0.4).verdict for i in range(10)]
    assert Verdict.DROP in burst and srv.counters.join_refused_rate >= 1
    assert burst.count(Verdict.ACCEPT) <= JOIN_PER_SOURCE[1]


def test_joins_seen_on_the_wire_make_the_tpbt_rows():
    ext = client()
    client_keys(ext)
    establish(ext, TA, A1, B1)
    # Our own join to B2: the SYN carries the peer's token, the third ACK completes it.
    ext.on_copy((A2, 40005, B2, 5201), SYN, [MpJoin(False, 2, token=TB, nonce=1)], 1)
    ext.on_copy((A2, 40005, B2, 5201), ACK, [MpJoin(False, hmac=b"j" * 20)], 1)
    assert (TA, A2, B2) in ext.tpbt.subflows
    srv = server()
    server_keys(srv)
    establish(srv, TB, B1, A1, sport=5201, dport=40000, server=True)
    srv.on_copy((A2, 40005, B2, 5201), SYN, [MpJoin(False, 2, token=TB, nonce=1)], 1)
    srv.on_copy((A2, 40005, B2, 5201), ACK, [MpJoin(False, hmac=b"j" * 20)], 1)
    assert (TB, B2, A2) in srv.tpbt.subflows
    srv.on_copy((A1, 1, B2, 5201), ACK, [MpJoin(False, hmac=b"j" * 20)], 1)  # unknown join
    assert (TB, B2, A1) not in srv.tpbt.subflows


def test_trust_loss_stops_refresh():
    ext = client()
    client_keys(ext)
    establish(ext, TA, A1, B1)
    trust_from_b(ext, now=0)
    assert any(isinstance(a, Carry) for a in ext.tick(now=ext.ttl / 2 + 0.1))  # refresh
    ext.on_trust({}, now=4)  # the binding went away
    assert not any(
        isinstance(a, Carry) and not a.option.withdraw for a in ext.tick(now=2 * ext.ttl)
    )


def test_the_client_notifies_when_the_connection_is_created_not_when_established():
    """The client's kernel says `established` only when the server's first data
    acknowledgment arrives; the keys (our third ACK's copy) and the subflow are known at
    `created`, and the notification is what the server's answer and announcement wait for."""
    ext = client()
    client_keys(ext)
    kw = dict(saddr=A1, daddr=B1, sport=40000, dport=5201, server_side=False)
    (note,) = ext.on_event(ev("created", TA, **kw), 0.001)
    assert isinstance(note, Carry) and note.subflow == (A1, 40000, B1, 5201) and note.urgent
    later = ext.on_event(ev("established", TA, **kw), 0.002)
    assert not any(isinstance(a, Carry) for a in later)  # sent once
    assert any(isinstance(a, CreateSubflow) for a in later)  # the joins wait for established
    # Keys not seen yet: nothing at `created`; the copy of our third ACK sends it.
    ext = client()
    assert ext.on_event(ev("created", TA, **kw), 0.001) == []
    assert [type(a) for a in client_keys(ext, now=0.002)] == [Carry]


def test_only_refreshes_and_their_answers_may_wait_for_an_empty_segment():
    """What a set-up or a change of trust waits for is urgent (the subflow's next segment
    takes it); a refresh and the answer to one are not (they wait for a segment without
    payload, so a sender's data does not go through the agent for them)."""
    ext = client()
    client_keys(ext)
    (note,) = [a for a in establish(ext, TA, A1, B1) if isinstance(a, Carry)]
    assert note.urgent and not note.option.echo
    b_echo = msg(KB, KA, 1, 1, B1, A1, echo=True)
    took = ext.on_addr_trust((B1, 5201, A1, 40000), b_echo, now=0.5)
    assert not any(isinstance(a, Carry) for a in took)  # an answer is not answered
    refresh_at = ext.ttl / 2 + 0.1
    (refresh,) = [a for a in ext.tick(now=refresh_at) if isinstance(a, Carry)]
    assert not refresh.urgent and not refresh.option.echo
    (answer,) = [a for a in trust_from_b(ext, now=refresh_at, counter=2) if isinstance(a, Carry)]
    assert not answer.urgent and answer.option.echo  # b was trusted already: a refresh
    # The refresh got no answer: sent again, at once.
    (retried,) = [a for a in ext.tick(now=refresh_at + ext.retry + 0.05) if isinstance(a, Carry)]
    assert retried.urgent and not retried.option.echo
    # a's protection ends and comes back: the peer must hear it at once.
    ext.on_trust({}, now=refresh_at + ext.retry + 0.1)
    back = ext.on_trust({A1: 30.0}, now=refresh_at + ext.retry + 0.2)
    renewed = [a for a in back if isinstance(a, Carry)]
    assert renewed and all(a.urgent for a in renewed)


def test_losing_protection_is_withdrawn_at_once_over_another_trusted_subflow():
    A3 = "10.5.0.10"
    ext = Extension({A1: 1, A2: 2, A3: 3})
    ext.on_trust({A1: 30, A3: 30}, now=0)
    client_keys(ext)
    establish(ext, TA, A1, B1)
    ext.on_event(ev("sub_established", TA, saddr=A3, daddr=B1, sport=40001, dport=5201), 0.1)
    trust_from_b(ext, now=0.2)  # b's notification on A1's subflow: B1 is trusted
    actions = ext.on_trust({A3: 30}, now=1.0)  # the switch no longer protects A1
    (carry,) = [a for a in actions if isinstance(a, Carry)]
    assert carry.subflow == (A3, 40001, B1, 5201)  # packets from A1 are dropped now
    assert carry.option.withdraw and carry.option.addr_id == 1
    assert carry.option.hmac == addr_trust_hmac(KA, KB, carry.option, A1, A3, B1)
    assert ext.counters.addr_trust_withdrawn == 1


def test_without_another_trusted_subflow_no_withdrawal_is_sent():
    ext = client()
    client_keys(ext)
    establish(ext, TA, A1, B1)
    ext.on_event(ev("sub_established", TA, saddr=A2, daddr=B1, sport=40001, dport=5201), 0.1)
    trust_from_b(ext, now=0.2)
    actions = ext.on_trust({}, now=1.0)  # A2's subflow is untrusted: the peer would refuse it
    assert not any(isinstance(a, Carry) for a in actions)
    assert not any(isinstance(a, Carry) for a in ext.tick(now=10))  # no more refreshes


def test_a_withdrawal_counts_only_verified_fresh_and_on_a_trusted_subflow():
    ext = client()
    client_keys(ext)
    establish(ext, TA, A1, B1)
    ext.on_event(ev("sub_established", TA, saddr=A2, daddr=B2, sport=40003, dport=5201), 0.1)
    from_b1 = (B1, 5201, A1, 40000)
    trust_from_b(ext, now=1)
    assert ext.tpbt.remote_trusted(TA, B1, 1)
    forged = AddrTrust(1, 2, 0, b"\0" * 8, withdraw=True)
    assert ext.on_addr_trust(from_b1, forged, 2) == []
    assert ext.tpbt.remote_trusted(TA, B1, 2) and ext.counters.addr_trust_bad_hmac == 1
    # Verified, but on the untrusted subflow B2 -> A2 (the first subflow's eavesdropper
    # knows the keys and could have made it): refused.
    untrusted = msg(KB, KA, 1, 2, B2, A2, address=B1, lifetime=0, withdraw=True)
    assert ext.on_addr_trust((B2, 5201, A2, 40003), untrusted, 2) == []
    assert ext.tpbt.remote_trusted(TA, B1, 2) and ext.counters.withdrawal_untrusted == 1
    real = msg(KB, KA, 1, 3, B1, A1, lifetime=0, withdraw=True)
    assert ext.on_addr_trust(from_b1, real, 3) == []  # no answer to a withdrawal
    assert not ext.tpbt.remote_trusted(TA, B1, 3)
    # Replaying b's earlier notification does not bring the trust back.
    assert trust_from_b(ext, now=4, counter=1) == [] and not ext.tpbt.remote_trusted(TA, B1, 4)
    assert ext.counters.addr_trust_replayed == 1


def test_what_a_peer_says_counts_for_its_own_connection_only():
    """Two connections to the same peer address: a notification on one credits nothing on
    the other, and a T-flagged ADD_ADDR on one credits nothing at all."""
    KC = 0x3333333333333333
    TC = token_of(KC)
    ext = client()
    client_keys(ext)
    establish(ext, TA, A1, B1)
    ext.on_copy((A1, 41000, B1, 5201), ACK, [MpCapable(1, 0, KC, 0x4444)], 0)
    establish(ext, TC, A1, B1, sport=41000)
    other = msg(0x4444, KC, 1, 1, B1, A1)  # the other connection's peer, its own keys
    ext.on_addr_trust((B1, 5201, A1, 41000), other, 1)
    assert ext.tpbt.remote_trusted(TC, B1, 1) and not ext.tpbt.remote_trusted(TA, B1, 1)
    # A message signed for connection C, delivered on A's subflow: it does not verify.
    assert ext.on_addr_trust((B1, 5201, A1, 40000), other, 1) == []
    assert ext.counters.addr_trust_bad_hmac == 1 and not ext.tpbt.remote_trusted(TA, B1, 1)


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_event_kind_is_handled_or_ignored(kind):
    ext = client()
    assert isinstance(
        ext.on_event(ev(kind.value, 99, saddr=A1, daddr=B1, sport=1, dport=2), 0), list
    )


def test_addr_trust_is_taken_only_inside_the_subflows_window():
    """Where TCP itself would take the segment: near the subflow's next expected byte,
    the peer's initial sequence number (from its SYN/ACK) plus what the kernel received."""
    ext = client()
    isn = 2**32 - 100  # wraps around
    ext.on_copy((B1, 5201, A1, 40000), SYNACK, [MpCapable(1, 0, KB)], 0, seq=isn)
    incoming = (B1, 5201, A1, 40000)
    rcv_nxt = (isn + 1 + 500) % 2**32
    assert ext.in_window(incoming, rcv_nxt, 500, 1)
    assert ext.in_window(incoming, (rcv_nxt - 400) % 2**32, 500, 1)  # came before that data
    assert not ext.in_window(incoming, (rcv_nxt + 2**31) % 2**32, 500, 1)  # a guess
    assert not ext.in_window(incoming, rcv_nxt, None, 1)  # no such socket: fail closed
    assert not ext.in_window((B2, 5201, A2, 1), 5, 0, 1)  # no handshake seen: fail closed


def carried(actions: list) -> list:
    return [x for x in actions if isinstance(x, Carry)]


def opened_server(first=(B1, 5201, A2, 40000), enforce=True) -> Extension:
    b = server(enforce=enforce)
    server_keys(b, first)
    establish(b, TB, B1, first[2], sport=5201, dport=first[3], server=True)
    return b


def test_a_claim_about_the_clients_first_address_waits_for_the_opening_to_end():
    """The eavesdropper of a's unprotected first subflow (it has the keys) claims A2 in
    a's name, to b, with a huge counter, at once. b holds it; a's real claim (A1, on its
    own subflow) makes A1's subflow trusted; A2's is guarded and the held claim goes."""
    b = opened_server()
    claim = msg(KA, KB, 42, 2**31, A2, B1)
    assert b.on_addr_trust((A2, 40000, B1, 5201), claim, 0.01) == []
    assert not b.tpbt.remote_trusted(TB, A2, 0.01) and b.counters.claims_deferred == 1
    assert b.scope_of((A2, 40000, B1, 5201), 0.01) is Scope.OPENING
    b.on_event(ev("sub_established", TB, saddr=B1, daddr=A1, sport=5201, dport=1), 0.02)
    (answer,) = carried(b.on_addr_trust((A1, 1, B1, 5201), msg(KA, KB, 1, 1, A1, B1), 0.03))
    assert b.scope_of((A2, 40000, B1, 5201), 0.03) is Scope.GUARDED
    b.tick(0.6)
    assert not b.tpbt.remote_trusted(TB, A2, 0.6) and b.counters.addr_trust_guarded == 1
    # a sees no answer on its unprotected subflow; one there would be counted as forged.
    a = client(enforce=True)
    client_keys(a, (A2, 40000, B1, 5201))
    establish(a, TA, A2, B1)
    a.on_addr_trust((B1, 5201, A2, 40000), msg(KB, KA, 1, 7, B1, A2, echo=True), 0.02)
    assert a.counters.forged_claims_seen == 1


def test_a_held_claim_is_taken_when_the_client_claims_nothing_else():
    """A client that connected from its protected address claims it on the first
    subflow: trust comes when the opening ends (the tick), and b answers then."""
    b = opened_server(first=(B1, 5201, A1, 40000))
    assert b.on_addr_trust((A1, 40000, B1, 5201), msg(KA, KB, 1, 1, A1, B1), 0.01) == []
    assert b.scope_of((A1, 40000, B1, 5201), 0.49) is Scope.OPENING
    assert b.scope_of((A1, 40000, B1, 5201), 0.55) is Scope.OPENING  # until judged
    (answer,) = carried(b.tick(0.55))
    assert answer.subflow == (B1, 5201, A1, 40000) and answer.option.echo
    assert b.tpbt.trusted(TB, B1, A1, 0.55) and b.guarded(0.55) == {}
    # After the opening, a claim about it is taken only if no other client address is
    # trusted: the eavesdropper of the first subflow can claim its address then, but a
    # real client with a protected address has claimed that one first.
    late = opened_server()
    late.on_event(ev("sub_established", TB, saddr=B1, daddr=A1, sport=5201, dport=1), 0.6)
    late.on_addr_trust((A1, 1, B1, 5201), msg(KA, KB, 1, 1, A1, B1), 0.6)
    late_claim = msg(KA, KB, 42, 2**31, A2, B1)
    plain = Extension({B1: 1}, enforce=False)  # not enforcing: nothing is guarded
    plain.on_trust({B1: 30}, now=0)
    server_keys(plain, (B1, 5201, A2, 40000))
    establish(plain, TB, B1, A2, sport=5201, dport=40000, server=True)
    plain.on_event(ev("sub_established", TB, saddr=B1, daddr=A1, sport=5201, dport=1), 0.6)
    plain.on_addr_trust((A1, 1, B1, 5201), msg(KA, KB, 1, 1, A1, B1), 0.6)
    assert plain.on_addr_trust((A2, 40000, B1, 5201), late_claim, 0.7) == []
    assert plain.counters.claims_superseded == 1 and not plain.tpbt.remote_trusted(TB, A2, 0.7)


def test_counters_are_per_address_pair():
    """A forger's huge counter on the pair it reads does not silence the peer on others."""
    b = opened_server(enforce=False)
    b.tick(0.6)
    b.on_addr_trust((A2, 40000, B1, 5201), msg(KA, KB, 42, 2**32 - 1, A2, B1), 0.6)
    assert b.tpbt.remote_trusted(TB, A2, 0.6)  # the first address, claimed after the opening
    b.on_event(ev("sub_established", TB, saddr=B1, daddr=A1, sport=5201, dport=1), 0.7)
    b.on_addr_trust((A1, 1, B1, 5201), msg(KA, KB, 1, 1, A1, B1), 0.7)
    assert b.tpbt.remote_trusted(TB, A1, 0.7) and b.counters.addr_trust_replayed == 0
    b.on_addr_trust((A1, 1, B1, 5201), msg(KA, KB, 1, 1, A1, B1), 0.8)
    assert b.counters.addr_trust_replayed == 1  # the same pair: a replay


def test_a_peer_address_unbound_in_the_export_is_untrusted_at_once():
    """b's binding goes and b has no other trusted subflow to send a withdrawal on; a
    reads the same controller's export, which no longer lists B1: a's TPBT drops it
    there and then, not when b's last notification's lifetime ends."""
    owners = {A1: ("00:00:00:00:0a:01", 1, 1), B1: ("00:00:00:00:0b:01", 3, 1)}
    ext = client(enforce=True)
    ext.on_trust({A1: 30, B1: 30}, 0, owners)
    client_keys(ext)
    establish(ext, TA, A1, B1)
    trust_from_b(ext, now=1)
    first = (A1, 40000, B1, 5201)
    assert ext.trusted(ext.conn_of(first), first, 1)
    ext.on_trust({A1: 30}, 2, {A1: owners[A1]})
    assert not ext.trusted(ext.conn_of(first), first, 2)
    assert ext.counters.peer_trust_unbound == 1
    assert ext.scope_of((B1, 5201, A1, 40000), 2) is Scope.GUARDED  # enforcement stays on
    ext.on_trust({A1: 30, B1: 30}, 3, owners)  # bound again, to b: b's notification runs
    assert ext.trusted(ext.conn_of(first), first, 3)
    ext.on_trust({A1: 30, B1: 30}, 4, owners | {B1: ("00:00:00:00:0e:01", 3, 9)})
    assert not ext.trusted(ext.conn_of(first), first, 4)  # someone else's now: void
    assert ext.counters.peer_trust_unbound == 2


def test_a_claim_the_export_corroborates_is_taken_at_once():
    """A client that connected from its protected address, in b's controller's domain:
    the export lists A1, so the claim is true whoever signed it, and b takes it within
    the round trip instead of at the opening's end. A2, which the export does not list,
    is still held (the eavesdropper's forgery of the test above)."""
    owners = {A1: ("00:00:00:00:0a:01", 1, 1), B1: ("00:00:00:00:0b:01", 3, 1)}
    b = opened_server(first=(B1, 5201, A1, 40000))
    b.on_trust({A1: 30, B1: 30}, 0, owners)
    (answer,) = carried(b.on_addr_trust((A1, 40000, B1, 5201), msg(KA, KB, 1, 1, A1, B1), 0.01))
    assert answer.subflow == (B1, 5201, A1, 40000) and answer.option.echo
    assert b.tpbt.trusted(TB, B1, A1, 0.01) and b.counters.claims_corroborated == 1
    assert b.counters.claims_deferred == 0 and b.guarded(0.01) == {}
    forged = opened_server()
    forged.on_trust({A1: 30, B1: 30}, 0, owners)
    assert forged.on_addr_trust((A2, 40000, B1, 5201), msg(KA, KB, 42, 2**31, A2, B1), 0.01) == []
    assert forged.counters.claims_deferred == 1 and forged.counters.claims_corroborated == 0


def test_an_addr_trust_read_before_its_connection_is_known_is_judged_when_it_is():
    """The agent can read the copy of a's first segments (keys, then a's notification)
    before the kernel's `created` event: b held the notification and judges it when the
    connection comes, answering within the round trip instead of after a's retry (a
    second: the 1-s set-ups of the path-manager benchmark)."""
    owners = {A1: ("00:00:00:00:0a:01", 1, 1), B1: ("00:00:00:00:0b:01", 3, 1)}
    b = server()
    b.on_trust({A1: 30, B1: 30}, 0, owners)
    server_keys(b, (B1, 5201, A1, 40000))
    incoming = (A1, 40000, B1, 5201)
    assert b.on_addr_trust(incoming, msg(KA, KB, 1, 1, A1, B1), 0.001) == []
    assert b.counters.addr_trust_early == 1 and b.counters.addr_trust_received == 0
    actions = establish(b, TB, B1, A1, sport=5201, dport=40000, server=True, now=0.002)
    (answer,) = carried(actions)
    assert answer.subflow == (B1, 5201, A1, 40000) and answer.option.echo
    assert b.tpbt.trusted(TB, B1, A1, 0.002) and b.counters.addr_trust_received == 1
    assert Announce(TB, 2, B2) in actions  # the hold ends with the trusted subflow


def test_held_addr_trusts_are_judged_like_any_other_and_bounded():
    """Held is not trusted: a forged message is refused at judgement (bad HMAC), one
    past its lifetime is never judged, and a subflow holds only a few."""
    a = client()
    first = (B1, 5201, A1, 40000)
    forged = AddrTrust(1, 1, 6, b"\0" * 8)
    for _ in range(EARLY_PER_SUBFLOW + 3):
        a.on_addr_trust(first, forged, 0.001)
    assert a.counters.addr_trust_early == EARLY_PER_SUBFLOW
    client_keys(a)
    establish(a, TA, A1, B1, now=0.002)
    assert a.counters.addr_trust_bad_hmac == EARLY_PER_SUBFLOW
    assert not a.tpbt.remote_trusted(TA, B1, 0.002)
    late = client()
    late.on_addr_trust(first, msg(KB, KA, 1, 1, B1, A1), 0.001)
    client_keys(late)
    establish(late, TA, A1, B1, now=0.001 + EARLY_LIFETIME)
    assert late.counters.addr_trust_received == 0 and not late.tpbt.remote_trusted(TA, B1, 1.5)


@pytest.mark.parametrize("how", ["closed", "evicted", "orphaned"])
def test_a_gone_connection_takes_its_peers_initial_sequence_numbers_along(how, monkeypatch):
    """A later connection on the same four-tuple whose handshake copy was lost must not
    inherit the old one's: the agent's window kick would land anywhere, maybe inside the
    window as a byte of data."""
    ext = client()
    first = (A1, 40000, B1, 5201)
    ext.on_copy((B1, 5201, A1, 40000), SYNACK, [MpCapable(1, 0, KB)], 0.0, seq=1000)
    client_keys(ext, first)
    establish(ext, TA, A1, B1)
    assert ext.next_expected(first, 10, 1.0) == 1011
    if how == "closed":
        ext.on_event(ev("closed", TA), 2.0)
    elif how == "evicted":
        monkeypatch.setattr("hosts.extension.MAX_CONNS", 1)
        establish(ext, TA + 1, A1, B1, sport=40001)
    else:
        ext.on_event(ev("sub_closed", TA, saddr=A1, daddr=B1, sport=40000, dport=5201), 2.0)
        ext.tick(2.0 + ORPHAN_LIFETIME + 1)
    assert TA not in ext.conns
    assert ext.next_expected(first, 10, 3.0) is None
