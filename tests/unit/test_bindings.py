"""The binding table: FCFS (RFC 6620), DHCP snooping (RFC 7513), limits, expiry."""

from hypothesis import given
from hypothesis import strategies as st

from controller.bindings import (
    BOUND,
    DHCP,
    FCFS,
    STATIC,
    TESTING,
    BindingTable,
    Bound,
    Probe,
    Rejected,
    Unbound,
    Unchanged,
)

A, B = "00:00:00:00:00:0a", "00:00:00:00:00:0b"


def test_first_claim_binds_and_repeats_are_unchanged():
    t = BindingTable()
    d = t.claim(1, 1, A, "10.0.0.1", now=0)
    assert isinstance(d, Bound) and d.binding.source == FCFS and d.binding.port == 1
    assert isinstance(t.claim(1, 1, A, "10.0.0.1", now=1), Unchanged)
    assert t.get("10.0.0.1").mac == A


def test_conflict_with_live_owner_is_refused():
    t = BindingTable(probe_timeout=0.5)
    t.claim(1, 1, A, "10.0.0.1", now=0)
    d = t.claim(1, 2, B, "10.0.0.1", now=1)
    assert isinstance(d, Probe) and d.owner.port == 1
    assert t.get("10.0.0.1").state == TESTING
    r = t.owner_answered("10.0.0.1", A)
    assert isinstance(r, Rejected)
    assert t.get("10.0.0.1").port == 1 and t.get("10.0.0.1").state == BOUND
    assert t.counters[(1, 2)].rejected_claims == 1
    assert t.tick(now=5) == []  # nothing left pending


def test_conflict_with_dead_owner_moves_the_address():
    t = BindingTable(probe_timeout=0.5)
    t.claim(1, 1, A, "10.0.0.1", now=0)
    t.claim(1, 2, B, "10.0.0.1", now=1)
    assert t.tick(now=1.4) == []  # still waiting for the owner
    unbound, bound = t.tick(now=1.6)
    assert isinstance(unbound, Unbound) and unbound.binding.port == 1
    assert isinstance(bound, Bound) and bound.binding.port == 2 and bound.binding.mac == B


def test_answer_from_someone_else_does_not_count():
    t = BindingTable()
    t.claim(1, 1, A, "10.0.0.1", now=0)
    t.claim(1, 2, B, "10.0.0.1", now=0)
    assert t.owner_answered("10.0.0.1", B) is None


def test_second_claimant_during_a_probe_is_refused():
    t = BindingTable()
    t.claim(1, 1, A, "10.0.0.1", now=0)
    t.claim(1, 2, B, "10.0.0.1", now=0)
    assert isinstance(t.claim(1, 3, "00:00:00:00:00:0c", "10.0.0.1", now=0), Rejected)


def test_per_port_limit():
    t = BindingTable(max_per_port=2)
    assert isinstance(t.claim(1, 1, A, "10.0.0.1", now=0), Bound)
    assert isinstance(t.claim(1, 1, A, "10.0.0.2", now=0), Bound)
    r = t.claim(1, 1, A, "10.0.0.3", now=0)
    assert isinstance(r, Rejected) and "limit" in r.reason
    assert t.counters[(1, 1)].rejected_claims == 1
    assert isinstance(t.claim(1, 2, B, "10.0.0.3", now=0), Bound)  # other ports unaffected


def test_the_per_port_limit_counts_both_families_and_every_source():
    """IPv4 and IPv6 bindings (FCFS and DHCPv6 alike) share a port's limit: a host
    cannot take more addresses by switching family."""
    t = BindingTable(max_per_port=3)
    assert isinstance(t.claim(1, 1, A, "10.0.0.1", now=0), Bound)
    assert isinstance(t.claim(1, 1, A, "fe80::1", now=0), Bound)
    assert isinstance(t.dhcp_ack(1, 1, A, "2001:db8::9", lease=60, now=0, move=False), Bound)
    assert isinstance(t.claim(1, 1, A, "2001:db8::1", now=0), Rejected)
    assert isinstance(t.claim(1, 1, A, "10.0.0.2", now=0), Rejected)
    assert t.counters[(1, 1)].rejected_claims == 2


def test_dhcp_ack_binds_renews_and_expires():
    t = BindingTable()
    d = t.dhcp_ack(1, 3, A, "10.0.0.100", lease=120, now=1000)
    assert d.binding.source == DHCP and d.binding.expires_in(1010) == 110
    d = t.dhcp_ack(1, 3, A, "10.0.0.100", lease=120, now=1060)
    assert d.binding.expires_at == 1180
    assert t.tick(now=1179) == []
    (u,) = t.tick(now=1180)
    assert isinstance(u, Unbound) and u.reason == "lease expired"
    assert t.get("10.0.0.100") is None


def test_dhcp_release_only_by_the_lease_holder():
    t = BindingTable()
    t.dhcp_ack(1, 3, A, "10.0.0.100", lease=120, now=0)
    assert t.dhcp_release(1, 4, B, "10.0.0.100", "dhcp release") is None  # spoofed
    u = t.dhcp_release(1, 3, A, "10.0.0.100", "dhcp release")
    assert isinstance(u, Unbound) and t.get("10.0.0.100") is None


def test_dhcp_server_overrides_stale_fcfs_but_not_static():
    t = BindingTable()
    t.claim(1, 1, A, "10.0.0.100", now=0)
    d = t.dhcp_ack(1, 2, B, "10.0.0.100", lease=60, now=1)
    assert d.replaced.port == 1 and d.binding.port == 2
    t.add_static(1, 5, A, "10.0.0.200")
    assert isinstance(t.dhcp_ack(1, 2, B, "10.0.0.200", lease=60, now=1), Rejected)


def test_a_lease_that_may_not_move_stays_with_its_holder():
    """DHCPv6 (move=False): a REPLY for an address bound to another port or MAC is
    refused and counted; the holder's own renewal still goes through."""
    t = BindingTable()
    t.dhcp_ack(1, 3, A, "2001:db8::9", lease=60, now=0, move=False)
    refused = t.dhcp_ack(1, 2, B, "2001:db8::9", lease=60, now=1, move=False)
    assert isinstance(refused, Rejected) and t.counters[(1, 2)].rejected_claims == 1
    assert (t.get("2001:db8::9").port, t.get("2001:db8::9").mac) == (3, A)
    renewed = t.dhcp_ack(1, 3, A, "2001:db8::9", lease=120, now=2, move=False)
    assert renewed.binding.expires_at == 122


def test_static_binding_is_never_probed_away():
    t = BindingTable()
    t.add_static(1, 1, A, "10.0.0.1")
    assert t.get("10.0.0.1").source == STATIC
    assert isinstance(t.claim(1, 2, B, "10.0.0.1", now=0), Rejected)


def test_port_down_removes_the_ports_bindings():
    t = BindingTable()
    t.claim(1, 1, A, "10.0.0.1", now=0)
    t.claim(1, 1, A, "2001:db8::1", now=0)
    t.claim(1, 2, B, "10.0.0.2", now=0)
    gone = t.port_down(1, 1)
    assert {u.binding.ip for u in gone} == {"10.0.0.1", "2001:db8::1"}
    assert [b.ip for b in t.all()] == ["10.0.0.2"]


def test_addresses_are_normalised():
    t = BindingTable()
    t.claim(1, 1, A, "2001:DB8:0::1", now=0)
    assert t.get("2001:db8::1") is not None


def test_the_per_port_index_follows_every_change():
    t = BindingTable(max_per_port=100)
    for i in range(5):
        t.claim(1, 1, f"00:00:00:00:00:{i:02x}", f"10.0.0.{i}", now=0)
    t.add_static(1, 2, "00:00:00:00:00:09", "10.0.0.1")  # moves to port 2
    t.dhcp_ack(1, 3, "00:00:00:00:00:0a", "10.0.0.50", 60, now=0)
    t.remove("10.0.0.2")
    t.port_down(1, 3)
    t.tick(now=1000)
    for port in (1, 2, 3):
        scan = {b.ip for b in t.all() if (b.dpid, b.port) == (1, port)}
        assert {b.ip for b in t.on_port(1, port)} == scan
    assert {b.ip for b in t.on_port(1, 1)} == {"10.0.0.0", "10.0.0.3", "10.0.0.4"}
    assert [b.ip for b in t.on_port(1, 2)] == ["10.0.0.1"]


def test_expiry_skips_renewed_replaced_and_removed_leases_and_waits_for_a_probe():
    t = BindingTable(probe_timeout=0.5)
    t.dhcp_ack(1, 3, A, "10.0.0.100", lease=100, now=0)
    t.dhcp_ack(1, 3, A, "10.0.0.100", lease=100, now=50)  # renewed: ends at 150
    t.dhcp_ack(1, 4, B, "10.0.0.101", lease=100, now=0)
    t.remove("10.0.0.101")
    t.dhcp_ack(1, 5, A, "10.0.0.102", lease=100, now=0)
    t.add_static(1, 5, A, "10.0.0.102")  # static now: no lifetime
    assert t.tick(now=100) == []
    # A lease that ends while its owner is being probed waits for the probe's answer.
    assert isinstance(t.claim(1, 6, B, "10.0.0.100", now=149.8), Probe)
    assert t.tick(now=150) == []
    assert t.owner_answered("10.0.0.100", A) is not None  # the owner keeps it: refused
    (u,) = t.tick(now=150.1)
    assert isinstance(u, Unbound) and u.binding.ip == "10.0.0.100"
    assert u.reason == "lease expired"
    assert t.tick(now=1000) == [] and t.get("10.0.0.102").source == STATIC


def test_the_tick_does_not_walk_every_binding():
    """At 10,000 bindings a walk took 2-10 ms of every 0.1-s tick, and claims waited."""
    t = BindingTable(max_per_port=100_000)
    for i in range(10_000):
        t.add_static(1, 1, A, f"10.{i // 250}.{i % 250}.1")
    t.dhcp_ack(1, 2, B, "10.200.0.1", lease=10, now=0)

    def no_walk():
        raise AssertionError("the tick walked the table")

    t._by_ip.items = no_walk
    t._by_ip.values = no_walk
    assert t.tick(now=5) == []
    (u,) = t.tick(now=10)
    assert u.binding.ip == "10.200.0.1" and len(t._by_ip) == 10_000


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ack", "static", "remove", "claim", "tick"]),
            st.integers(0, 5),  # which address
            st.integers(1, 50),  # lease, or how far time moves
        ),
        max_size=60,
    )
)
def test_expiry_removes_exactly_the_leases_that_ended(ops):
    """Whatever renewals, replacements and removals came before: after a tick, no
    binding whose lifetime has ended is left (but one being probed), and each one the
    tick removed had ended."""
    t = BindingTable(probe_timeout=0.5)
    now = 0.0
    for op, which, amount in ops:
        ip = f"10.0.0.{which + 1}"
        if op == "ack":
            t.dhcp_ack(1, 1 + which % 2, A, ip, lease=amount, now=now)
        elif op == "static":
            t.add_static(1, 1, A, ip)
        elif op == "remove":
            t.remove(ip)
        elif op == "claim":
            t.claim(1, 3, B, ip, now=now)
        else:
            now += amount / 10
            before = {b.ip: b for b in t.all()}
            for d in t.tick(now):
                if isinstance(d, Unbound) and d.reason == "lease expired":
                    assert d.binding.expires_at <= now and before[d.binding.ip] == d.binding
            for b in t.all():
                assert b.expires_at is None or b.expires_at > now or b.state == TESTING
