"""The campus topology generator, without a network: reproducible from its seed, the
coverage and placements it was asked for, and bad parameters refused."""

import pytest

from topologies.campus import UPLINK_PORT, CampusTopo


def campus(**kw):
    return CampusTopo(
        **{
            "switches": 6,
            "hosts": 3,
            "coverage": 0.5,
            "multihomed": 3,
            "attackers": 4,
            "seed": 7,
            **kw,
        }
    )


def test_the_same_seed_gives_the_same_campus_and_another_seed_another():
    one, two = campus(), campus()
    assert (one.savi_nets, one.multihomed, one.addresses) == (
        two.savi_nets,
        two.multihomed,
        two.addresses,
    )
    others = [campus(seed=s) for s in range(8, 12)]
    assert any((o.savi_nets, o.multihomed) != (one.savi_nets, one.multihomed) for o in others)


@pytest.mark.parametrize("coverage, savi", [(0.0, 0), (0.5, 3), (1 / 3, 2), (1.0, 6)])
def test_coverage_is_the_fraction_of_savi_access_switches(coverage, savi):
    t = campus(coverage=coverage)
    assert len(t.savi_nets) == savi
    config = t.savi_config()["switch"]
    assert [s["dpid"] for s in config] == [*sorted(t.savi_nets), 200]  # and the server side
    assert all(s["trusted_ports"] == [UPLINK_PORT] for s in config)


def test_multihomed_hosts_get_a_second_network_of_the_other_kind_protected_first():
    t = campus()
    for host in t.multihomed:
        first, second = t.addresses[host]
        assert first.split(".")[1] != second.split(".")[1]
        assert t.on_savi[first] and not t.on_savi[second]  # coverage 0.5: both kinds exist
    assert set(t.agent_hosts()) == {*t.multihomed, "srv"}


def test_routes_are_the_nodes_own_with_a_table_per_address_where_multihomed():
    """The routes travel with the nodes (RoutedHost), so mn builds them too."""
    t = campus()
    for host, addrs in t.addresses.items():
        routing = t.nodeInfo(host)["routing"]
        assert routing[-1] == f"route add default via {t.gateways[addrs[0]]}"
        if host not in t.multihomed:
            assert routing == routing[-1:]
            continue
        for table, addr in enumerate(addrs, start=1):
            intf = t.interface[addr]
            assert f"rule add from {addr} table {table}" in routing
            assert f"route add default via {t.gateways[addr]} dev {intf} table {table}" in routing
        # eth0 is on the host's own switch, eth1 on the other: by link order
        own, other = (t.interface[a] for a in sorted(addrs, key=lambda a: int(a.split(".")[3])))
        assert (own, other) == (f"{host}-eth0", f"{host}-eth1")


def test_attackers_are_spread_over_both_kinds_or_placed_as_asked():
    spread = campus()
    kinds = [spread.on_savi[spread.addresses[m][0]] for m in spread.attackers]
    assert kinds == [True, False, True, False]
    for placement, kind in (("savi", True), ("legacy", False)):
        t = campus(placement=placement)
        assert {t.on_savi[t.addresses[m][0]] for m in t.attackers} == {kind}


def test_every_host_port_is_a_link_to_its_switch():
    t = campus()
    ports = [(t.linkInfo(a, b)["port2"], b) for a, b in t.links() if b.startswith("s")]
    assert len(ports) == len(set(ports))  # no port number used twice on a switch
    expected = 6 * 3 + 3 + 4 + 1 + 7  # hosts, second interfaces, attackers, srv, uplinks
    assert len(ports) == expected


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"switches": 0}, "switches must be"),
        ({"hosts": 51}, "hosts must be"),
        ({"coverage": 1.5}, "coverage is a fraction"),
        ({"switches": 1, "multihomed": 1}, "needs two"),
        ({"attackers": -1}, "attackers must be"),
        ({"placement": "nearby"}, "placement must be one of"),
        ({"coverage": 0.0, "placement": "savi"}, "no savi switch"),
    ],
)
def test_bad_parameters_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        campus(**kw)
