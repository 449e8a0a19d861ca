"""The campus topology on a real testbed: every port attached, every host reaches the
server, and spoofing is blocked at the SAVI access switches only."""

import subprocess

import pytest

from experiments.harness import HarnessError, Transfer, set_mode
from tests.integration.tools import campus_spoofing, path_report, wait_until
from topologies.builder import Testbed
from topologies.campus import SERVER, CampusTopo


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    topo = CampusTopo(switches=4, hosts=2, coverage=0.5, multihomed=1, attackers=2, seed=1)
    with Testbed(topo, log_dir=str(tmp_path_factory.mktemp("campus"))) as t:
        yield t


def ovs(*args: str) -> str:
    return subprocess.run(["ovs-vsctl", *args], capture_output=True, text=True, check=True).stdout


def test_every_port_is_attached_and_up(tb):
    for switch in tb.net.switches:
        links = [i for i in switch.intfList() if i.name != "lo"]
        ports = ovs("list-ports", switch.name).split()
        assert sorted(ports) == sorted(i.name for i in links)
        for port in ports:
            assert int(ovs("get", "Interface", port, "ofport")) > 0, port
            assert "up" in ovs("get", "Interface", port, "link_state"), port


def test_every_host_reaches_the_server_from_each_address(tb):
    topo = tb.topo
    for name, addrs in topo.addresses.items():
        if name == "srv":
            continue
        for addr in addrs:
            try:
                wait_until(
                    lambda a=addr, h=name: ", 0% packet loss"
                    in tb.net[h].cmd(f"ping -c1 -W1 -I {a} {SERVER}"),
                    15,
                    f"{name} to reach the server from {addr}",
                )
            except HarnessError as e:
                raise AssertionError(f"{e}\n{path_report(tb, name, addr)}") from e


def test_spoofing_is_blocked_at_savi_switches_only(tb, tmp_path):
    arrived, expected = campus_spoofing(tb, tmp_path)
    assert arrived == expected
    assert set(expected.values()) == {0, 5}  # both kinds of switch were tried


def test_a_multihomed_host_runs_trusted_mptcp_to_the_server(tb):
    """Its protected address and the server's make a trusted subflow (the draft's Table
    1 row True/True); its legacy address makes an untrusted one; digests agree."""
    topo = tb.topo
    (host,) = topo.multihomed
    protected, legacy = topo.addresses[host]
    set_mode(tb, "trusted")
    xfer = Transfer(tb, seconds=2, to=SERVER, client=host, server="srv", port=5210)

    def rows():
        return {
            (e["src"], e["dst"]): (e["sip_trust"], e["dip_trust"]) for e in tb.tpbt(host)["entries"]
        }

    wait_until(
        lambda: rows().get((protected, SERVER)) == (True, True),
        15,
        f"{host}'s TPBT to trust its protected path",
    )
    assert rows().get((legacy, SERVER)) == (False, True)
    got, sent = xfer.results(timeout=60)
    assert got["sha256"] == sent["sha256"] and got["bytes"] == sent["bytes"] > 0
