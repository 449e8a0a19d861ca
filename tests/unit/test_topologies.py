"""Topologies load the way `mn --custom FILE` loads them, and describe what they claim."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_like_mn(name: str) -> dict:
    """mn execs the file with empty globals: no __file__, no package (mininet/bin/mn)."""
    path = f"topologies/{name}.py"
    customs: dict = {}
    exec(compile((REPO / path).read_text(), path, "exec"), customs, customs)  # noqa: S102
    return customs["topos"]


@pytest.mark.parametrize(
    "name, topo", [("single", "savi_single"), ("dualhomed", "dualhomed"), ("campus", "campus")]
)
def test_mn_custom_loads(name, topo, monkeypatch):
    monkeypatch.chdir(REPO)
    topos = load_like_mn(name)
    t = topos[topo]()
    assert t.switches() and t.hosts()


def test_dualhomed_shape():
    from topologies.dualhomed import DualHomedTopo

    t = DualHomedTopo()
    assert sorted(t.hosts()) == ["a", "b", "m1", "m2", "r1", "r2"]
    assert t.savi_config()["switch"] == [
        {"dpid": 1, "trusted_ports": [10]},
        {"dpid": 3, "trusted_ports": [10]},
    ]
    assert set(t.agent_hosts()) == {"a", "b"}


def test_single_with_dhcp_allows_only_the_server_port():
    from topologies.single import DHCP_SERVER_PORT, SingleSwitchTopo

    t = SingleSwitchTopo(hosts=2, dhcp=True)
    assert t.savi_config()["switch"][0]["dhcp_server_ports"] == [DHCP_SERVER_PORT]
    assert t.dhcp_clients == ["h1", "h2"]
    with pytest.raises(ValueError, match="1..90"):
        SingleSwitchTopo(hosts=0)
