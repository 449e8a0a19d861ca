"""The TPBT: the draft's Table 1 from local and per-connection remote trust, with lifetimes."""

import json

from hosts.tpbt import FOREVER, Tpbt

A1, A2, B1, B2 = "10.1.0.10", "10.2.0.10", "10.3.0.20", "10.4.0.20"
T1, T2 = 0x1111, 0x2222  # two connections


def table(now=0.0) -> Tpbt:
    t = Tpbt()
    t.set_local({A1: 30}, now)
    t.set_remote(T1, B1, 20, now)
    for s in (A1, A2):
        for d in (B1, B2):
            t.add_subflow(T1, s, d)
    return t


def test_trust_combinations_as_in_table_1():
    t = table()
    got = {(e.src, e.dst): (e.sip_trust, e.dip_trust, e.lifetime) for e in t.entries(now=1)}
    assert got == {
        (A1, B1): (True, True, 19),
        (A1, B2): (True, False, 29),
        (A2, B1): (False, True, 19),
        (A2, B2): (False, False, 0),
    }
    assert t.trusted(T1, A1, B1, 1) and not t.trusted(T1, A1, B2, 1)
    assert not t.trusted(T1, A2, B1, 1)


def test_remote_trust_belongs_to_its_connection():
    t = table()
    t.add_subflow(T2, A1, B1)
    assert t.trusted(T1, A1, B1, 1) and not t.trusted(T2, A1, B1, 1)
    t.set_remote(T2, B1, 0, 1)  # the other connection's peer withdraws: nothing changes here
    assert t.trusted(T1, A1, B1, 1)
    t.remove_connection(T1)
    assert not t.remote_trusted(T1, B1, 1) and all(e.token == T2 for e in t.entries(1))


def test_lifetimes_expire():
    t = table()
    assert not t.trusted(T1, A1, B1, now=20)  # the peer's notification ran out
    assert t.entry(T1, A1, B2, now=29.5).sip_trust and not t.entry(T1, A1, B2, now=30).sip_trust


def test_local_updates_report_changes_and_removal():
    t = table()
    assert t.set_local({A1: 30, A2: 30}, now=5) == {A2}
    assert t.set_local({A2: 30}, now=6) == {A1}  # binding removed at the switch
    assert not t.entry(T1, A1, B1, now=6).sip_trust
    t.set_remote(T1, B1, 0, now=6)
    assert not t.entry(T1, A2, B1, now=6).dip_trust


def test_lifetime_is_capped_at_the_drafts_maximum():
    t = Tpbt()
    t.set_local({A1: 10**9}, 0)
    t.set_remote(T1, B1, 10**9, 0)
    t.add_subflow(T1, A1, B1)
    assert t.entries(0)[0].lifetime == FOREVER


def test_render_per_connection_and_json():
    t = table()
    t.add_subflow(T2, A2, B2)
    blocks = t.render(now=1).split("\n\n")
    assert len(blocks) == 2
    lines = blocks[0].splitlines()
    assert lines[0] == f"Connection {T1:08x}"
    assert lines[1].split() == ["SubFlow", "SipTrust", "DipTrust", "Lifetime", "Other"]
    assert lines[2].split() == [f"Sf({A1},{B1})", "True", "True", "19", "/"]
    assert len(lines) == 6
    rows = json.loads(t.to_json(now=1))
    assert rows[3] == {
        "token": T1,
        "src": A2,
        "dst": B2,
        "sip_trust": False,
        "dip_trust": False,
        "lifetime": 0,
        "other": "/",
    }
    assert Tpbt().render(0) == "(no connections)"


def test_the_trust_history_keeps_transitions_only_and_subflows_that_go():
    from hosts.tpbt import TrustHistory

    t, h = table(), TrustHistory(limit=5)
    h.observe(t.entries(1.0), 1.0)
    assert sorted(h.changes) == sorted(
        [
            (1.0, T1, A1, B1, True),
            (1.0, T1, A1, B2, False),
            (1.0, T1, A2, B1, False),
            (1.0, T1, A2, B2, False),
        ]
    )
    h.observe(t.entries(2.0), 2.0)  # nothing changed: nothing recorded
    assert len(h.changes) == 4
    h.observe(t.entries(25.0), 25.0)  # the peer's word about B1 has expired
    assert h.changes[-1] == (25.0, T1, A1, B1, False)
    t.remove_subflow(T1, A2, B2)
    h.observe(t.entries(26.0), 26.0)
    assert h.changes[-1] == (26.0, T1, A2, B2, False) and len(h.changes) == 5  # bounded
    assert (T1, A2, B2) not in h.last


# -- the peer's addresses in the controller's own domain -------------------------------------
OWNER_B = ("00:00:00:00:0b:01", 3, 1)


def test_an_address_of_the_domain_is_believed_only_while_the_export_lists_it():
    t = table()
    t.set_domain({B1: (30, OWNER_B)}, 0)
    assert t.trusted(T1, A1, B1, 1)
    assert t.set_domain({}, 2) == {B1}  # the binding removed: untrusted at once
    assert not t.entry(T1, A1, B1, 2).dip_trust
    assert t.set_domain({B1: (30, OWNER_B)}, 3) == set()  # the same owner binds it again
    assert t.trusted(T1, A1, B1, 3)  # the peer's claim still runs (20 s from 0)
    t.set_domain({B1: (1, OWNER_B)}, 3)
    assert t.entry(T1, A1, B1, 3).lifetime == 1  # the shorter of the two lifetimes
    assert not t.trusted(T1, A1, B1, 4.5)  # the export's lifetime ends first


def test_a_new_owner_voids_the_peers_claims():
    t = table()
    t.set_domain({B1: (30, OWNER_B)}, 0)
    assert t.set_domain({B1: (30, ("00:00:00:00:0e:01", 3, 7))}, 1) == {B1}
    assert not t.trusted(T1, A1, B1, 1)
    t.set_domain({B1: (30, OWNER_B)}, 2)  # back to the first owner: still void
    assert not t.trusted(T1, A1, B1, 2)
    t.set_remote(T1, B1, 20, 2)  # until the peer claims it again
    assert t.trusted(T1, A1, B1, 3)


def test_addresses_outside_the_domain_keep_the_peers_word():
    t = table()
    t.set_domain({}, 0)  # another controller's address, never listed here
    assert t.trusted(T1, A1, B1, 1)
    t.set_domain({B1: (30, OWNER_B)}, 1)
    assert t.set_domain({}, 2) == {B1}  # once listed, its removal counts
    assert not t.trusted(T1, A1, B1, 2)


def test_addresses_once_listed_are_remembered_up_to_a_bound(monkeypatch):
    """A port's owner can make the export list any number of addresses in turn; beyond
    MAX_OWNERS, those no peer's claim speaks of are forgotten, never a claimed one."""
    from hosts import tpbt

    monkeypatch.setattr(tpbt, "MAX_OWNERS", 10)
    t = table()
    t.set_domain({B1: (30, OWNER_B)}, 0)
    for i in range(20):  # one binding after another on the attacker's port
        t.set_domain({f"10.9.0.{i}": (30, ("00:00:00:00:0e:01", 3, 7))}, i * 0.01)
    assert len(t.owners) <= 11 and B1 in t.owners
    t.set_domain({}, 1)  # B1's binding goes: still untrusted at once
    assert not t.trusted(T1, A1, B1, 1)


def test_the_history_json_encodes_each_change_once_and_says_what_the_history_holds():
    import json

    from hosts.tpbt import HistoryJson, TrustHistory

    t, h = table(), TrustHistory(limit=5)
    encoded = HistoryJson(h)
    assert json.loads(encoded.text()) == []
    h.observe(t.entries(1.0), 1.0)
    assert json.loads(encoded.text()) == [list(c) for c in h.changes]
    first = list(encoded.encoded)
    h.observe(t.entries(25.0), 25.0)  # one more change: only it is encoded
    assert json.loads(encoded.text())[-1] == [25.0, T1, A1, B1, False]
    assert len(encoded.encoded) == 5
    assert all(old is kept for old, kept in zip(first, encoded.encoded, strict=False))  # not anew
    t.remove_subflow(T1, A2, B2)
    t.remove_subflow(T1, A1, B2)
    h.observe(t.entries(26.0), 26.0)  # past the limit: the oldest go from both
    assert len(h.changes) == 5 and h.total == 7
    assert json.loads(encoded.text()) == [list(c) for c in h.changes]
