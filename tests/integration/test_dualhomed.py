"""The default dual-homed scenario: every path works, only the SAVI side is protected."""

import pytest

from experiments.bench import HooksOnly
from experiments.harness import Transfer, set_mode
from tests.integration.tools import Capture, send_frames, wait_until
from topologies.builder import Testbed, TestbedError, offload_mode
from topologies.dualhomed import (
    A_TRUSTED,
    A_UNTRUSTED,
    B_TRUSTED,
    B_UNTRUSTED,
    HETERO_PATHS,
    DualHomedTopo,
)
from topologies.nodes import ROUTER_TSO_MTU_HEADROOM, ovs_datapath, userspace_tso


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    with Testbed(DualHomedTopo(), log_dir=str(tmp_path_factory.mktemp("dual"))) as t:
        yield t


@pytest.mark.parametrize("src", [A_TRUSTED, A_UNTRUSTED])
@pytest.mark.parametrize("dst", [B_TRUSTED, B_UNTRUSTED])
def test_every_address_pair_is_a_path(tb, src, dst):
    assert ", 0% packet loss" in tb.net["a"].cmd(f"ping -c1 -W2 -I {src} {dst}")


def test_trust_export_lists_exactly_the_protected_addresses(tb):
    for host, dst in (("a", B_TRUSTED), ("b", A_TRUSTED), ("m1", B_TRUSTED)):
        tb.net[host].cmd(f"ping -c1 -W2 {dst}")
    trusted = wait_until(
        lambda: {x["ip"] for x in tb.get("/savi/trust")["addresses"]} >= {A_TRUSTED, B_TRUSTED}
        and tb.get("/savi/trust"),
        5,
        "trust",
    )
    ips = {x["ip"] for x in trusted["addresses"]}
    assert {A_TRUSTED, B_TRUSTED, "10.1.0.66"} <= ips
    assert not ips & {A_UNTRUSTED, B_UNTRUSTED, "10.2.0.66"}  # legacy networks: no SAVI


def test_spoofing_is_stopped_only_where_savi_runs(tb, tmp_path):
    m1, m2, b = tb.net["m1"], tb.net["m2"], tb.net["b"]
    for m in (m1, m2):
        m.cmd(f"ping -c1 -W2 {B_TRUSTED}")  # learn the router's MAC
    cap = Capture(b, "any", "udp port 9999", tmp_path / "b.pcap")
    for m, intf, gw, sport in ((m1, "m1-eth0", "10.1.0.1", 1), (m2, "m2-eth0", "10.2.0.1", 2)):
        gw_mac = m.cmd(f"ip neigh show {gw}").split("lladdr ")[1].split()[0]
        # Each attacker spoofs the address of host a on its own access network.
        spoofed = A_TRUSTED if m is m1 else A_UNTRUSTED
        send_frames(
            m,
            intf,
            f"Ether(dst='{gw_mac}')/IP(src='{spoofed}',dst='{B_TRUSTED}')"
            f"/UDP(sport={sport},dport=9999)",
            count=3,
        )
    cap.stop()
    assert cap.count("udp src port 1") == 0  # m1 behind SAVI: dropped at s1
    assert cap.count("udp src port 2") == 3  # m2 on the legacy network: arrives


def test_heterogeneous_paths_are_refused_without_netem_or_really_delayed():
    from topologies.builder import have_netem

    topo = DualHomedTopo(paths=HETERO_PATHS)
    if not have_netem():
        with pytest.raises(TestbedError, match="netem"):
            with Testbed(topo):
                pass
        return
    with Testbed(topo) as tb:  # the Vagrant VM: the delay must really be there
        a = tb.net["a"]
        for src, dst, rtt in ((A_TRUSTED, B_TRUSTED, 10), (A_UNTRUSTED, B_UNTRUSTED, 50)):
            out = a.cmd(f"ping -c3 -I {src} {dst}")
            avg = float(out.split("min/avg/max")[1].split("/")[4])
            assert rtt * 0.9 <= avg <= rtt * 2, out


def test_unknown_path_parameters_are_refused():
    with pytest.raises(ValueError, match="rtt_ms, loss_pct"):
        DualHomedTopo(paths={"trusted": {"delay": "10ms"}})


def _frag_fails(router) -> int:
    out = router.cmd("nstat -az IpFragFails")
    return int(out.split("IpFragFails")[1].split()[0])


def test_offloads_follow_the_datapath_and_mptcp_crosses_the_routers_whole(tb):
    """With OVS's userspace TSO (scripts/start-ovs.sh) the hosts keep their checksum and
    segmentation offloads and routers get the MTU headroom that OVS 3.1's re-cut TSO
    segments need (docs/line-rate.md): an MPTCP transfer through a router arrives whole
    and no router refuses a segment as too big. Without userspace TSO the hosts compute
    their own checksums instead."""
    a, routers = tb.net["a"], (tb.net["r1"], tb.net["r2"])
    features = a.cmd("ethtool -k a-eth0")
    if userspace_tso():
        assert "tx-checksumming: on" in features and "tcp-segmentation-offload: on" in features
        for r in routers:
            for intf in (name for name in r.intfNames() if name != "lo"):
                mtu = int(r.cmd(f"cat /sys/class/net/{intf}/mtu"))
                assert mtu == 1500 + ROUTER_TSO_MTU_HEADROOM, (r.name, intf, mtu)
    elif ovs_datapath() == "user":
        assert "tx-checksumming: off" in features
    before = [_frag_fails(r) for r in routers]
    client, server = Transfer(tb, nbytes=30_000_000, to=B_TRUSTED, pause=0.1, timeout=60).results()
    assert client["bytes"] == server["bytes"] == 30_000_000
    assert client["sha256"] == server["sha256"]
    assert [_frag_fails(r) for r in routers] == before


def _hooks(host) -> dict[str, bool | str]:
    """Which of the agents' kernel hooks are in ``host`` (the classifier: on every
    interface, on none, or "partly")."""
    intfs = [name for name in host.intfNames() if name != "lo"]
    attached = {"guard_ingress" in host.cmd(f"tc filter show dev {i} ingress") for i in intfs}
    return {
        "classifier": attached.pop() if len(attached) == 1 else "partly",
        "copies": "table inet tmptcp" in host.cmd("nft list tables"),
        "queues": "-j TMPTCP_OUT" in host.cmd("iptables-nft -t mangle -S OUTPUT"),
    }


@pytest.mark.parametrize(
    ("part", "installed"),
    [
        ("all", {"classifier": True, "copies": True, "queues": True}),
        ("classifier", {"classifier": True, "copies": False, "queues": False}),
        ("netfilter", {"classifier": False, "copies": True, "queues": True}),
    ],
)
def test_the_agents_hooks_alone_leave_the_kernel_path_manager_in_charge(tb, part, installed):
    """The benchmark's middle modes (experiments.hooks_only, bench --only hook_cost): the
    agents' classifier on every interface, copy rules and queue rules, or one part of
    them (the diagnostic splits their cost), and no agent. Each is exactly what it says;
    a kernel-PM transfer over four subflows goes through it whole (the queues let packets
    pass with nobody listening), and stopping takes every hook away again."""
    set_mode(tb, "vanilla")
    hosts = [tb.net[h] for h in tb.topo.agent_hosts()]
    hooks = HooksOnly(tb, part)
    try:
        for host in hosts:
            assert _hooks(host) == installed, host
        client, server = Transfer(tb, seconds=1, wait_subflows=4, timeout=30).results()
        assert client["sha256"] == server["sha256"] and client["bytes"] == server["bytes"] > 0
        if installed["queues"]:  # every segment a sent went through the queue rules' chain
            jumps = tb.net["a"].cmd("iptables-nft -t mangle -L OUTPUT -v -x -n")
            sent = next(int(ln.split()[0]) for ln in jumps.splitlines() if "TMPTCP_OUT" in ln)
            assert sent > 1000, jumps
    finally:
        hooks.stop()
    for host in hosts:
        assert _hooks(host) == {"classifier": False, "copies": False, "queues": False}, host


def _window_filtered(host) -> set[bool]:
    """Whether each interface of ``host`` sends through the stale-window filter."""
    intfs = [name for name in host.intfNames() if name != "lo"]
    return {"name stale_window " in host.cmd(f"tc filter show dev {i} egress") for i in intfs}


def test_the_mptcp_endpoints_send_through_the_stale_window_filter(tb):
    """The work-around for the kernel's stale-window edge (hosts/bpf/stale_window.c,
    docs/line-rate.md) is on the egress of every interface of the MPTCP endpoints, stays
    when an agent's classifier comes and goes on the same interfaces, follows the
    receiver's subflows of a bulk MPTCP transfer (each begins with a bare data ACK) and
    lets the transfer through whole. Routers and attackers do without it (an attack
    leaves as it was made). The provenance line says it is on."""
    endpoints = set(tb.topo.agent_hosts())
    assert endpoints == {"a", "b"}
    for host in tb.net.hosts:
        assert _window_filtered(host) == {host.name in endpoints}, host
    set_mode(tb, "vanilla")
    hooks = HooksOnly(tb, "classifier")
    hooks.stop()
    assert all(_window_filtered(tb.net[name]) == {True} for name in endpoints)
    tracked = tb.window_filter.counters()["tracked"]
    client, server = Transfer(tb, seconds=1, wait_subflows=4, timeout=30).results()
    assert client["sha256"] == server["sha256"] and client["bytes"] == server["bytes"] > 0
    assert tb.window_filter.counters()["tracked"] >= tracked + 4
    assert "stale-window ACK filter on" in offload_mode()
