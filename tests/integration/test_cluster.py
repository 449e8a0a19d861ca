"""Cluster mode on two servers: this machine and a second one made here (its own network
namespace, Open vSwitch and sshd: topologies/localserver.py). Mininet Cluster Edition
runs the second server's nodes over ssh; links between the servers are VXLAN tunnels
over the wire between them. The campus's router and server side go to the second
server, the access switches and their hosts stay here, so every path to the server
crosses a tunnel."""

import json
import subprocess

import pytest

from experiments.harness import Transfer, set_mode
from tests.integration.tools import campus_spoofing, wait_until
from topologies.builder import Testbed
from topologies.campus import SERVER, CampusTopo
from topologies.cluster import Cluster, ClusterError, ClusterNet
from topologies.localserver import LocalServer
from topologies.nodes import userspace_tso


@pytest.fixture(scope="module")
def server2(tmp_path_factory):
    with LocalServer(tmp_path_factory.mktemp("server2")) as server:
        yield server


@pytest.fixture(scope="module")
def tb(server2, tmp_path_factory):
    cluster = Cluster(servers=("localhost", server2.address), ssh_config=server2.ssh_config)
    topo = CampusTopo(switches=4, hosts=2, coverage=0.5, multihomed=1, attackers=2, seed=1)
    with Testbed(topo, log_dir=str(tmp_path_factory.mktemp("cluster")), cluster=cluster) as t:
        yield t


def local_bridges() -> set[str]:
    out = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_nodes_run_on_both_servers(tb, server2):
    placement = tb.net.placement_of()
    assert set(placement.values()) == {"localhost", server2.address}
    (host,) = tb.topo.multihomed
    assert placement[host] == "localhost" and placement["srv"] == server2.address
    remote_switches = {s.name for s in tb.net.switches if s.server == server2.address}
    local_switches = {s.name for s in tb.net.switches} - remote_switches
    assert remote_switches and local_switches
    # A remote switch lives in the second server's Open vSwitch, not in this one's.
    assert local_switches <= local_bridges() and not remote_switches & local_bridges()
    some_remote = tb.net[sorted(remote_switches)[0]]
    assert set(some_remote.cmd("ovs-vsctl list-br").split()) == remote_switches
    # Its shell runs in the second server's network namespace.
    ns = lambda pid: subprocess.run(  # noqa: E731
        ["readlink", f"/proc/{pid}/ns/net"], capture_output=True, text=True
    ).stdout.strip()
    assert ns(some_remote.pid) != ns("self")


def test_every_port_is_attached_and_up(tb):
    for switch in tb.net.switches:
        links = sorted(i.name for i in switch.intfList() if i.name != "lo")
        assert sorted(switch.cmd(f"ovs-vsctl list-ports {switch.name}").split()) == links
        for port in links:
            ofport = switch.cmd(f"ovs-vsctl get Interface {port} ofport").strip()
            assert int(ofport) > 0, (switch.name, port, ofport)


def test_links_between_servers_are_vxlan_tunnels(tb):
    crossing = [link for link in tb.net.links if link.intf1.node.server != link.intf2.node.server]
    assert crossing
    for link in crossing:
        for intf in (link.intf1, link.intf2):
            assert "vxlan id" in intf.node.cmd(f"ip -d link show {intf.name}"), intf.name


def test_spoofing_is_blocked_at_savi_switches_only(tb, tmp_path):
    arrived, expected = campus_spoofing(tb, tmp_path)
    assert arrived == expected
    assert set(expected.values()) == {0, 5}  # both kinds of switch were tried


def tunnel_bytes(tb) -> int:
    total = 0
    for link in tb.net.links:
        if link.intf1.node.server == link.intf2.node.server:
            continue
        out = link.intf1.node.cmd(f"ip -j -s link show {link.intf1.name}")
        total += json.loads(out)[0]["stats64"]["rx"]["bytes"]
    return total


def test_trusted_mptcp_across_the_tunnel(tb):
    """The multi-homed host (here) and the server (on the second server): a trusted
    subflow from its protected address, an untrusted one from its legacy address, both
    through the tunnels; the agents' TPBT says so and the digests agree."""
    topo = tb.topo
    (host,) = topo.multihomed
    protected, legacy = topo.addresses[host]
    set_mode(tb, "trusted")
    before = tunnel_bytes(tb)
    xfer = Transfer(tb, seconds=2, to=SERVER, client=host, server="srv", port=5210)

    def rows(name):
        return {
            (e["src"], e["dst"]): (e["sip_trust"], e["dip_trust"]) for e in tb.tpbt(name)["entries"]
        }

    # While the connection lasts, both ends' tables: the client's rows (its address,
    # the server's) and the server's (its address, the client's).
    expected = {
        host: {(protected, SERVER): (True, True), (legacy, SERVER): (False, True)},
        "srv": {(SERVER, protected): (True, True), (SERVER, legacy): (True, False)},
    }
    for name, want in expected.items():
        wait_until(
            lambda n=name, w=want: all(rows(n).get(k) == v for k, v in w.items()),
            20,
            f"{name}'s TPBT to hold {want}",
        )
    got, sent = xfer.results(timeout=60)
    assert got["sha256"] == sent["sha256"] and got["bytes"] == sent["bytes"] > 0
    # The data went through the tunnels (each tunnel end counts what it received).
    assert tunnel_bytes(tb) - before >= sent["bytes"]


def test_a_server_whose_switches_forward_otherwise_is_refused(tmp_path):
    """The builder chooses the hosts' offloads for every server from this machine's OVS:
    a server whose OVS runs the other TSO mode would get hosts whose checksums or 64-KB
    segments its switches cannot carry, so it is refused before anything is built."""
    with LocalServer(
        tmp_path,
        netns="tmptcp-odd",
        address="10.254.1.2",
        gateway="10.254.1.1",
        tso=not userspace_tso(),
    ) as odd:
        cluster = Cluster(servers=("localhost", odd.address), ssh_config=odd.ssh_config)
        with pytest.raises(ClusterError, match=r"userspace TSO (on|off), this machine's") as e:
            ClusterNet(cluster)
        assert odd.address in str(e.value)


def test_no_ssh_control_folder_is_left_behind(server2, tmp_path, monkeypatch):
    """Mininet Cluster Edition makes ~/.ssh/mn (and ~/.ssh) for control sockets this
    testbed does not use; stopping the network takes away what it made."""
    monkeypatch.setenv("HOME", str(tmp_path))
    cluster = Cluster(servers=("localhost", server2.address), ssh_config=server2.ssh_config)
    net = ClusterNet(cluster)
    assert (tmp_path / ".ssh" / "mn").is_dir()
    net.stop()
    assert not (tmp_path / ".ssh").exists()
