"""experiments.campus's plain parts: who attacks whom, the summary, the configuration."""

import math

import pytest

from experiments.campus import (
    QUICK,
    Config,
    Pair,
    attack_pairs,
    carried,
    describe,
    network_of,
    summarize,
)
from topologies.campus import CampusTopo


def test_each_victim_gets_one_attacker_on_its_networks_a_legacy_one_first():
    topo = CampusTopo(switches=8, hosts=2, coverage=0.5, multihomed=8, attackers=8, seed=3)
    pairs = attack_pairs(topo, seed=7)
    assert pairs == attack_pairs(topo, seed=7)  # seeded
    victims = [p.victim for p in pairs]
    assert len(victims) == len(set(victims))  # one attacker per victim and round
    legacy_attackers = {
        network_of(topo.addresses[m][0])
        for m in topo.attackers
        if not topo.on_savi[topo.addresses[m][0]]
    }
    for p in pairs:
        (own,) = topo.addresses[p.attacker]
        assert network_of(own) == network_of(p.victim_addr)  # the same access network
        assert p.victim_addr in topo.addresses[p.victim]
        assert topo.interface[p.victim_addr] == p.victim_intf
        assert p.savi == topo.on_savi[p.victim_addr]
        # A SAVI-network attacker only where no legacy network of the victim has one.
        if p.savi:
            assert not {network_of(a) for a in topo.addresses[p.victim]} & legacy_attackers
    # With one attacker per switch, every multi-homed host is someone's victim, and the
    # hosts with a legacy address are attacked there.
    assert set(victims) == set(topo.multihomed)
    assert any(not p.savi for p in pairs)


def test_an_attacker_with_no_victim_on_its_network_makes_no_pair():
    topo = CampusTopo(switches=4, hosts=1, coverage=0.5, multihomed=0, attackers=2, seed=1)
    assert attack_pairs(topo) == []


def row(mode, coverage, savi, success, seen=1):
    return {
        "mode": mode,
        "placement": "spread",
        "coverage": coverage,
        "savi": savi,
        "success": success,
        "subflows_seen": seen,
    }


def conn(mode, coverage, trusted, total, ok=True):
    return {
        "mode": mode,
        "placement": "spread",
        "coverage": coverage,
        "bytes_match": ok,
        "control_trusted": trusted,
        "control_total": total,
        "after_trusted": trusted,
        "after_total": total,
    }


def test_the_summary_counts_pairs_by_network_kind_with_intervals():
    attacks = [
        row("vanilla", 0.5, False, True),
        row("vanilla", 0.5, False, True),
        row("vanilla", 0.5, True, False),
        row("enforce", 0.5, False, False),
        row("enforce", 0.5, False, False, seen=0),  # not made: left out of the rate
    ]
    connections = [conn("enforce", 0.5, 9, 10), conn("enforce", 0.5, 5, 5, ok=False)]
    groups = {g["mode"]: g for g in summarize(attacks, connections)["groups"]}
    v = groups["vanilla"]
    assert (v["successes"], v["pairs"]) == (2, 3)
    assert (v["legacy_successes"], v["legacy_pairs"], v["savi_pairs"]) == (2, 2, 1)
    lo, hi = v["success_ci95"]
    assert lo < 2 / 3 < hi
    assert v["confinement"] is None and v["connections"] == 0
    e = groups["enforce"]
    assert e["success_rate"] == 0 and e["pairs"] == 1 and e["not_made"] == 1
    assert e["transfers_failed"] == 1
    assert e["confinement"] == pytest.approx(14 / 15)
    assert "attacks worked 0/1" in describe(e) and "transfers failed 1/2" in describe(e)


def test_a_group_without_pairs_has_no_rate():
    groups = summarize([], [conn("enforce", 1.0, 3, 3)])["groups"]
    assert groups[0]["success_rate"] is None and math.isnan(groups[0]["success_ci95"][0])
    assert "n/a" in describe(groups[0])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"coverages": (1.5,)}, "fraction"),
        ({"placements": ("everywhere",)}, "placement"),
        ({"modes": ("paranoid",)}, "mode"),
        ({"seeds": 0}, "seeds"),
        ({"switches": 1, "multihomed": 1}, "two"),
    ],
)
def test_bad_configurations_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        Config(**kwargs)


def test_the_quick_configuration_has_both_ends_of_coverage():
    assert QUICK.coverages == (0.0, 1.0) and len(QUICK.builds()) == 2
    assert isinstance(attack_pairs(CampusTopo(**QUICK.topo_args(0.0, "spread", 1)))[0], Pair)


def pair_row(victim, savi, success, seen=1):
    return {"victim": victim, "savi": savi, "success": success, "subflows_seen": seen}


def intact_unless_harmed(rows):
    """Connections as they end: broken where the attack worked, intact elsewhere."""
    return [{"host": r["victim"], "bytes_match": not r["success"]} for r in rows]


def test_a_size_is_carried_only_when_every_control_holds():
    twenty = [pair_row(f"h{i}", False, True) for i in range(20)]
    good = [*twenty, pair_row("s", True, False)]
    assert carried(good, intact_unless_harmed(good)) == (True, "all controls as expected")
    # One attack not made and one miss in 21: within what chance allows (2 each).
    rows = [pair_row("h0", False, False, seen=0), pair_row("h1", False, False), *good[2:]]
    assert carried(rows, intact_unless_harmed(rows))[0]
    rows = [pair_row(f"h{i}", False, False) for i in range(3)] + good[3:]
    ok, why = carried(rows, intact_unless_harmed(rows))
    assert not ok and why == "only 17 of 20 attacks from legacy networks worked"
    # At 8 pairs one event is allowed, two are not.
    eight = [pair_row(f"h{i}", False, True) for i in range(8)]
    rows = [pair_row("h0", False, False, seen=0), *eight[1:]]
    assert carried(rows, intact_unless_harmed(rows))[0]
    rows = [pair_row("h0", False, False, seen=0), pair_row("h1", False, False, seen=0), *eight[2:]]
    assert carried(rows, intact_unless_harmed(rows)) == (False, "only 6 of 8 attacks were made")
    rows = [pair_row(f"h{i}", False, False, seen=0) for i in range(3)] + good[3:]
    ok, why = carried(rows, intact_unless_harmed(rows))
    assert not ok and why == "only 18 of 21 attacks were made"  # and not also misses
    rows = [*twenty, pair_row("s", True, True)]
    ok, why = carried(rows, intact_unless_harmed(rows))
    assert not ok and why == "1 attacks from SAVI networks worked"
    conns = intact_unless_harmed(good)
    conns[-1]["bytes_match"] = False  # the SAVI network's victim, unharmed, lost its transfer
    ok, why = carried(good, conns)
    assert not ok and why == "1 unattacked or unharmed transfers failed"
