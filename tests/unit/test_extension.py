"""The extension's decisions, driven like the agent drives them, without a kernel."""

from hosts.extension import Announce, Carry, CreateSubflow, DestroySubflow, Extension
from hosts.options import AddAddr, AddrTrust, add_addr_hmac, addr_trust_hmac, token_of
from hosts.pm_netlink import Event

A1, A2, B1, B2 = "10.1.0.10", "10.2.0.10", "10.3.0.20", "10.4.0.20"
KA, KB = 0x1111111111111111, 0x2222222222222222  # a's and b's MP_CAPABLE keys
TA, TB = token_of(KA), token_of(KB)


def client(enforce=False) -> Extension:
    ext = Extension({A1: 1, A2: 2}, enforce=enforce)
    ext.on_trust({A1: 30}, now=0)
    return ext


def establish(ext, token, saddr, daddr, sport=40000, dport=5201, server=False, now=0.0):
    ev = dict(token=token, saddr=saddr, daddr=daddr, sport=sport, dport=dport, server_side=server)
    ext.on_event(Event("created", **ev), now)
    return ext.on_event(Event("established", **ev), now)


def test_client_plan_full_mesh_and_trust_notification():
    ext = client()
    ext.on_keys(KA, KB)  # sniffed third ACK: a is the sender
    actions = establish(ext, TA, A1, B1)
    assert Announce(TA, 2, A2) in actions
    assert CreateSubflow(TA, 2, A2, B1, 5201) in actions
    (carry,) = [a for a in actions if isinstance(a, Carry)]
    assert carry.subflow == (A1, 40000, B1, 5201)
    assert carry.option == AddrTrust(1, A1, addr_trust_hmac(KA, KB, 1, A1))
    more = ext.on_event(Event("announced", TA, daddr=B2, dport=5201, rem_id=2), 0)
    assert more == [CreateSubflow(TA, 1, A1, B2, 5201), CreateSubflow(TA, 2, A2, B2, 5201)]
    # The kernel may report the announcement twice: no duplicate subflows.
    assert ext.on_event(Event("announced", TA, daddr=B2, dport=5201, rem_id=2), 0) == []


def test_peer_notification_is_verified_and_answered():
    ext = client()
    ext.on_keys(KA, KB)
    establish(ext, TA, A1, B1)
    incoming = (B1, 5201, A1, 40000)
    forged = AddrTrust(1, B1, b"\0" * 8)
    assert ext.on_addr_trust(incoming, forged, now=1) == []
    assert ext.counters.addr_trust_bad_hmac == 1 and not ext.tpbt.remote_trusted(B1, 1)
    good = AddrTrust(1, B1, addr_trust_hmac(KB, KA, 1, B1))
    actions = ext.on_addr_trust(incoming, good, now=1)
    assert ext.tpbt.remote_trusted(B1, 1) and ext.tpbt.trusted(A1, B1, 1)
    (answer,) = [a for a in actions if isinstance(a, Carry)]
    assert answer.option.echo and answer.option.address == A1
    assert answer.option.hmac == addr_trust_hmac(KA, KB, 1, A1, initiator_address=B1)
    assert not ext.tpbt.remote_trusted(B1, 1 + ext.ttl)  # it expires unless refreshed


def test_trusted_announcement_waits_for_the_peer_then_gets_t():
    ext = Extension({A1: 1, A2: 2})
    ext.on_trust({A1: 30}, now=0)
    ext.on_keys(KA, KB)
    actions = establish(ext, TA, A2, B1)  # first subflow from the untrusted address
    assert not any(isinstance(a, Announce) for a in actions)  # A1 waits for the peer
    assert not any(isinstance(a, Announce) for a in ext.tick(now=0.5))
    ext.on_event(Event("sub_established", TA, saddr=A1, daddr=B1, sport=1, dport=5201), 0.6)
    actions = ext.on_addr_trust(
        (B1, 5201, A1, 1), AddrTrust(1, B1, addr_trust_hmac(KB, KA, 1, B1)), 0.7
    )
    assert Announce(TA, 1, A1) in actions
    out = ext.outgoing_add_addr((A2, 40000, B1, 5201), AddAddr(1, A1, hmac=b"k" * 8), 0.8)
    assert out.trust and out.hmac == add_addr_hmac(KA, KB, 1, A1, trust=True)


def test_vanilla_peer_gets_plain_announcements_after_the_wait():
    ext = Extension({A1: 1, A2: 2}, announce_wait=1.0)
    ext.on_trust({A1: 30}, now=0)
    ext.on_keys(KA, KB)
    establish(ext, TA, A2, B1)
    assert Announce(TA, 1, A1) in ext.tick(now=1.1)
    assert ext.outgoing_add_addr((A2, 40000, B1, 5201), AddAddr(1, A1, hmac=b"k" * 8), 1.2) is None


def test_incoming_trusted_add_addr_is_translated_or_dropped():
    server = Extension({B1: 1, B2: 2})
    server.on_trust({B1: 30}, now=0)
    server.on_keys(KA, KB)  # the third ACK seen from the server side: a sent it
    establish(server, TB, B1, A2, sport=5201, dport=40000, server=True)
    incoming = (A2, 40000, B1, 5201)
    bad = AddAddr(1, A1, trust=True, hmac=b"\0" * 8)
    assert server.incoming_add_addr(incoming, bad, 1)[0] == "drop"
    good = AddAddr(1, A1, trust=True, hmac=add_addr_hmac(KA, KB, 1, A1, trust=True))
    verdict, std = server.incoming_add_addr(incoming, good, 1)
    assert verdict == "accept" and not std.trust
    assert std.hmac == add_addr_hmac(KA, KB, 1, A1)  # what b's kernel checks
    assert server.tpbt.remote_trusted(A1, 1)
    plain = AddAddr(2, B2, hmac=b"x" * 8)
    assert server.incoming_add_addr(incoming, plain, 1) == ("accept", None)


def test_untrusted_oldest_subflow_is_recreated_behind_the_trusted_one():
    ext = client()
    ext.on_keys(KA, KB)
    establish(ext, TA, A2, B1, sport=40000)
    ext.on_event(Event("sub_established", TA, saddr=A1, daddr=B1, sport=40001, dport=5201), 1)
    actions = ext.on_addr_trust((B1, 5201, A1, 40001),
                                AddrTrust(1, B1, addr_trust_hmac(KB, KA, 1, B1)), 1.5)  # fmt: skip
    assert DestroySubflow(TA, (A2, 40000, B1, 5201)) in actions
    closed = ext.on_event(Event("sub_closed", TA, saddr=A2, daddr=B1, sport=40000, dport=5201), 2)
    assert closed == [CreateSubflow(TA, 2, A2, B1, 5201)]
    ext.on_event(Event("sub_established", TA, saddr=A2, daddr=B1, sport=40002, dport=5201), 3)
    oldest = min(ext.conns[TA].subflows.values(), key=lambda s: s.order)
    assert oldest.four[0] == A1 and ext.counters.reordered == 1


def test_enforcement_drops_control_on_untrusted_subflows_only():
    ext = client(enforce=True)
    ext.on_keys(KA, KB)
    establish(ext, TA, A1, B1)
    ext.on_event(Event("sub_established", TA, saddr=A2, daddr=B2, sport=40003, dport=5201), 0)
    untrusted_in = (B2, 5201, A2, 40003)
    assert ext.enforcement_drop(untrusted_in, [4], 1) is None  # no trusted subflow yet
    ext.on_addr_trust((B1, 5201, A1, 40000), AddrTrust(1, B1, addr_trust_hmac(KB, KA, 1, B1)), 1)
    assert ext.enforcement_drop(untrusted_in, [4], 1)  # RM_ADDR
    assert ext.enforcement_drop(untrusted_in, [2], 1) is None  # DSS only
    assert ext.enforcement_drop((B1, 5201, A1, 40000), [4], 1) is None  # trusted subflow
    assert ext.guarded(1) == {(A2, 40003, B2, 5201)}
    assert ext.counters.enforced_drops == 1


def test_trust_loss_stops_refresh():
    ext = client()
    ext.on_keys(KA, KB)
    establish(ext, TA, A1, B1)
    ext.on_addr_trust((B1, 5201, A1, 40000), AddrTrust(1, B1, addr_trust_hmac(KB, KA, 1, B1)), 0)
    assert any(isinstance(a, Carry) for a in ext.tick(now=ext.ttl / 2 + 0.1))  # refresh
    ext.on_trust({}, now=4)  # the binding went away
    assert not any(isinstance(a, Carry) and not a.option.echo for a in ext.tick(now=2 * ext.ttl))


def test_joins_seen_on_the_wire_make_the_tpbt_rows():
    ext = client()
    ext.on_keys(KA, KB)
    establish(ext, TA, A1, B1)
    # Our own join to B2: the SYN carries the peer's token, the third ACK completes it.
    ext.on_join_syn((A2, 40005, B2, 5201), TB, outgoing=True)
    ext.on_join_ack((A2, 40005, B2, 5201), outgoing=True, now=1)
    assert (A2, B2) in ext.tpbt.subflows
    server = Extension({B1: 1, B2: 2})
    server.on_keys(KA, KB)
    establish(server, TB, B1, A1, sport=5201, dport=40000, server=True)
    server.on_join_syn((A2, 40005, B2, 5201), TB, outgoing=False)  # the peer's SYN to us
    server.on_join_ack((A2, 40005, B2, 5201), outgoing=False, now=1)
    assert (B2, A2) in server.tpbt.subflows
    server.on_join_ack((A1, 1, B2, 5201), outgoing=False, now=1)  # unknown join: ignored
    assert (B2, A1) not in server.tpbt.subflows


def test_losing_protection_is_withdrawn_at_once_from_another_address():
    ext = client()
    ext.on_keys(KA, KB)
    establish(ext, TA, A1, B1)
    ext.on_event(Event("sub_established", TA, saddr=A2, daddr=B1, sport=40001, dport=5201), 0.1)
    ext.on_addr_trust((B1, 5201, A1, 40000), AddrTrust(1, B1, addr_trust_hmac(KB, KA, 1, B1)),
                      0.2)  # the peer speaks the extension  # fmt: skip
    actions = ext.on_trust({}, now=1.0)  # the switch no longer protects A1
    (carry,) = [a for a in actions if isinstance(a, Carry)]
    assert carry.subflow[0] == A2  # packets from A1 are dropped by the switch now
    assert carry.option == AddrTrust(1, A1, addr_trust_hmac(KA, KB, 1, A1, withdraw=True),
                                     withdraw=True)  # fmt: skip
    assert ext.counters.addr_trust_withdrawn == 1
    assert not any(isinstance(a, Carry) for a in ext.tick(now=10))  # no more refreshes


def test_a_verified_withdrawal_ends_the_peers_trust_and_a_forged_one_does_not():
    ext = client()
    ext.on_keys(KA, KB)
    establish(ext, TA, A1, B1)
    from_b1 = (B1, 5201, A1, 40000)
    ext.on_addr_trust(from_b1, AddrTrust(1, B1, addr_trust_hmac(KB, KA, 1, B1)), 1)
    assert ext.tpbt.remote_trusted(B1, 1)
    forged = AddrTrust(1, B1, addr_trust_hmac(KB, KA, 1, B1), withdraw=True)  # replayed MAC
    assert ext.on_addr_trust(from_b1, forged, 2) == []
    assert ext.tpbt.remote_trusted(B1, 2) and ext.counters.addr_trust_bad_hmac == 1
    real = AddrTrust(1, B1, addr_trust_hmac(KB, KA, 1, B1, withdraw=True), withdraw=True)
    assert ext.on_addr_trust(from_b1, real, 3) == []  # no answer to a withdrawal
    assert not ext.tpbt.remote_trusted(B1, 3)
