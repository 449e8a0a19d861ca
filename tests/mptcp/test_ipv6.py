"""Trusted MPTCP over IPv6 on the dual-stack dual-homed topology: the same agents, the
same classifier, IPv6 connections (each host's IPv6 addresses bound by SAVI through
DAD). The IPv4 tests are the model; the kernel's MIB counters are the oracle."""

import pytest

from experiments.harness import set_mode
from experiments.shapes import SHAPES
from tests.integration.tools import Capture, bindings, send_frames, stat, wait_until
from tests.mptcp.helpers import (
    EXPECTED,
    Transfer,
    managed_transfer,
    mib,
    table,
    wait_for_table,
)
from tests.mptcp.test_enforcement import Forger
from tests.mptcp.test_trusted_mptcp import control_options, dissected
from topologies.builder import Testbed
from topologies.dualhomed import (
    A6_TRUSTED,
    A6_UNTRUSTED,
    A_UNTRUSTED,
    B6_TRUSTED,
    B6_UNTRUSTED,
    B_TRUSTED,
    M1_6,
    M2_6,
    DualHomedTopo,
)

EXPECTED6 = {
    "a": {
        (A6_TRUSTED, B6_TRUSTED): (True, True),
        (A6_TRUSTED, B6_UNTRUSTED): (True, False),
        (A6_UNTRUSTED, B6_TRUSTED): (False, True),
        (A6_UNTRUSTED, B6_UNTRUSTED): (False, False),
    },
    "b": {
        (B6_TRUSTED, A6_TRUSTED): (True, True),
        (B6_TRUSTED, A6_UNTRUSTED): (True, False),
        (B6_UNTRUSTED, A6_TRUSTED): (False, True),
        (B6_UNTRUSTED, A6_UNTRUSTED): (False, False),
    },
}
M1_PORT = 2  # m1's port on s1
TRUSTED_PAIRS = {(A6_TRUSTED, B6_TRUSTED), (B6_TRUSTED, A6_TRUSTED)}


@pytest.fixture
def tb(tmp_path):
    with Testbed(DualHomedTopo(ipv6=True), log_dir=str(tmp_path / "tb")) as t:
        a = t.net["a"]
        for src, dst in ((A6_TRUSTED, B6_TRUSTED), (A6_UNTRUSTED, B6_UNTRUSTED)):
            a.cmd(f"ping -6 -c1 -W2 -I {src} {dst}")  # neighbour caches filled
        t.net["m2"].cmd(f"ping -6 -c1 -W2 {A6_UNTRUSTED}")
        yield t


def test_the_hosts_ipv6_addresses_are_bound_and_trusted_only_behind_savi(tb):
    """a's and b's protected IPv6 addresses are DHCPv6 leases from r1, bound by the
    snooped REPLY with the lease's lifetime; the export the agents read has each host's
    protected IPv6 address, not the other."""
    for host, address, dpid in (("a", A6_TRUSTED, 1), ("b", B6_TRUSTED, 3)):
        (binding,) = bindings(tb, ip=address)
        assert (binding["dpid"], binding["port"], binding["source"]) == (dpid, 1, "dhcp")
        assert binding["mac"] == tb.net[host].intf(f"{host}-eth0").MAC()
        assert 0 < binding["expires_in"] <= 3600, binding
    assert bindings(tb, ip=A6_UNTRUSTED) == []  # a legacy switch binds nothing
    tb.start_agents()
    for host, trusted, untrusted in (
        ("a", A6_TRUSTED, A6_UNTRUSTED),
        ("b", B6_TRUSTED, B6_UNTRUSTED),
    ):
        wait_until(
            lambda h=host, t=trusted: t in tb.tpbt(h)["local_trusted"],
            10,
            f"{host} to learn that {trusted} is protected",
        )
        assert untrusted not in tb.tpbt(host)["local_trusted"]


def test_ipv6_spoofing_a_rogue_ra_and_a_rogue_dhcpv6_reply_are_dropped_at_the_savi_switch(
    tb, tmp_path
):
    """m1, on a's SAVI network (s1 port 2), sends in a's protected IPv6 address's name to
    b, advertises itself as a router and answers as a DHCPv6 server; only its packets
    from its own address get through (captures at b and a; s1's counters)."""
    m1, a = tb.net["m1"], tb.net["a"]
    r1_mac = tb.net["r1"].intf("r1-eth0").MAC()
    a_mac = a.intf("a-eth0").MAC()
    m1_ll = m1.cmd("ip -6 -o addr show dev m1-eth0 scope link").split("inet6 ")[1].split("/")[0]
    spoofed_before = stat(tb, M1_PORT, "spoofed_dropped_switch")
    ra_before = stat(tb, M1_PORT, "rogue_ra_dropped")
    at_b = Capture(tb.net["b"], "b-eth0", "ip6 and udp port 9999", tmp_path / "b.pcap")
    at_a = Capture(a, "a-eth0", "icmp6 or udp port 546", tmp_path / "a.pcap")
    udp = (
        "Ether(src='00:00:00:00:66:01',dst='{dst}')/IPv6(src='{src}',dst='{to}')"
        "/UDP(sport={sport},dport=9999)"
    )
    send_frames(m1, "m1-eth0", udp.format(dst=r1_mac, src=A6_TRUSTED, to=B6_TRUSTED, sport=1), 5)
    send_frames(m1, "m1-eth0", udp.format(dst=r1_mac, src=M1_6, to=B6_TRUSTED, sport=2), 1)
    ra = (
        f"Ether(src='00:00:00:00:66:01',dst='33:33:00:00:00:01')/IPv6(src='{m1_ll}',"
        "dst='ff02::1')/ICMPv6ND_RA()/ICMPv6NDOptPrefixInfo(prefix='2001:db8:bad::',prefixlen=64)"
    )
    send_frames(m1, "m1-eth0", ra, count=2)
    reply = (
        f"Ether(src='00:00:00:00:66:01',dst='{a_mac}')/IPv6(src='{m1_ll}',dst='fe80::1')"
        "/UDP(sport=547,dport=546)/DHCP6_Reply(trid=1)"
    )
    send_frames(m1, "m1-eth0", reply, count=2)
    wait_until(
        lambda: stat(tb, M1_PORT, "spoofed_dropped_switch") >= spoofed_before + 7,
        5,
        "s1 to count the spoofed packets and the rogue replies",
    )
    wait_until(
        lambda: stat(tb, M1_PORT, "rogue_ra_dropped") >= ra_before + 2,
        5,
        "s1's RA guard to count the rogue advertisements",
    )
    at_b.stop()
    at_a.stop()
    assert [line for line in at_b.lines() if "9999" in line and f"{M1_6}." in line]
    assert not [line for line in at_b.lines() if f"{A6_TRUSTED}." in line]  # spoofed: none
    seen = at_a.lines("ether src 00:00:00:00:66:01")
    assert not [line for line in seen if "router advertisement" in line or ".547 >" in line]
    assert "2001:db8:bad::" not in a.cmd("ip -6 addr show")


def test_an_ipv6_transfer_has_table_1_and_its_control_options_on_the_trusted_subflow(tb, tmp_path):
    caps = [
        Capture(
            tb.net[h],
            f"{h}-eth{i}",
            "ip6 and tcp port 5201",
            tmp_path / f"{h}{i}.pcap",
            snaplen=160,
        )
        for h in ("a", "b")
        for i in (0, 1)
    ]
    tb.start_agents()
    xfer = managed_transfer(tb, expected=EXPECTED6["a"], seconds=4, to=B6_TRUSTED)
    wait_for_table(tb, "b", EXPECTED6["b"])
    client, server = xfer.results()
    for c in caps:
        c.stop()
    assert server["sha256"] == client["sha256"] and server["bytes"] == client["bytes"] > 0
    assert server["peer"] == A6_TRUSTED
    assert mib(tb.net["b"], "MPTcpExtMPJoinAckRx") == 3  # a full mesh of 4 IPv6 subflows
    rows = [row for c in caps for row in control_options(c.path)]
    subtypes = {st for _, _, st, _ in rows}
    assert {3, 9} <= subtypes, rows  # ADD_ADDR (and echoes) and ADDR_TRUST were sent
    off = [row for row in rows if (row[0], row[1]) not in TRUSTED_PAIRS]
    assert off == [], f"control options on untrusted IPv6 subflows: {off}"
    # The dissector: ADDR_TRUST speaks for its segment's IPv6 source; b's announcement
    # of its IPv6 address carries the T flag only for a protected address (it has none
    # other than the first subflow's, so its ADD_ADDR names the unprotected one: no T).
    decoded = dissected(tmp_path / "a0.pcap", family="ipv6")
    trust = [r for r in decoded if r["tmptcp.addr_trust.message"]]
    assert {r["tmptcp.addr_trust.message"] for r in trust} == {"notification", "answer"}, trust
    assert all(r["tmptcp.addr_trust.ipv6"] == r["ipv6.src"] for r in trust), trust
    announced = {
        (r["tmptcp.add_addr.ipv6"], r["tmptcp.add_addr.trust"])
        for r in decoded
        if r["tmptcp.add_addr.ipv6"] and r["tmptcp.add_addr.echo"] == "0"
    }
    assert (B6_UNTRUSTED, "0") in announced, decoded


# Shapes Linux acts on in IPv6 as in IPv4 (the positive control), including IPv6's own:
# a destination options header (ip_options) and fragments.
VANILLA_SHAPES = ["plain", "ip_options", "behind_dss", "fragments"]


@pytest.mark.parametrize("mode", ["vanilla", "enforce"])
def test_a_forged_ipv6_rm_addr_is_taken_by_a_vanilla_host_and_refused_by_an_enforcing_one(
    tb, tmp_path, mode
):
    """m2 taps a's unprotected link, which the connection's first subflow uses, and
    forges RM_ADDRs in b's name in IPv6 (an ID nobody uses: counted, harmless)."""
    a = tb.net["a"]
    set_mode(tb, mode)
    tap = tmp_path / "tap.pcap"
    cap = Capture(a, "a-eth1", "ip6 and tcp", tap, snaplen=160)
    forger = Forger(
        tb, tap, victim=(A6_TRUSTED, A6_UNTRUSTED), peer=(B6_TRUSTED, B6_UNTRUSTED), attacker=M2_6
    )
    forger.expect_bulk()
    kw = {"seconds": 2, "idle": 40, "timeout": 60, "bind": A6_UNTRUSTED, "to": B6_TRUSTED}
    if mode == "vanilla":
        xfer = Transfer(tb, wait_subflows=3, **kw)
        wait_until(lambda: B6_UNTRUSTED in a.cmd("ss -Htn state established"), 15, "a full mesh")
        for shape in VANILLA_SHAPES:
            before = mib(a, "MPTcpExtRmAddr")
            assert forger("rm_addr", shape)["sent"] > 0
            wait_until(lambda: mib(a, "MPTcpExtRmAddr") > before, 5, f"a to act on {shape}")  # noqa: B023
    else:
        xfer = managed_transfer(tb, expected=EXPECTED6["a"], **kw)
        wait_until(lambda: len(tb.tpbt("a")["guarded"]) >= 2, 10, "a's untrusted subflows guarded")
        before, guard_before = mib(a, "MPTcpExtRmAddr"), tb.tpbt("a")["guard"]
        sent = sum(forger("rm_addr", shape)["sent"] for shape in sorted(SHAPES))

        def dropped() -> int:
            g = tb.tpbt("a")["guard"]
            keys = ("drop_control", "drop_malformed", "drop_fragment", "drop_exthdr")
            return sum(g[k] - guard_before[k] for k in keys)

        # At least one drop per shape and guarded subflow that m2 sees (two).
        wait_until(lambda: dropped() >= 2 * len(SHAPES), 10, "a's guard to drop every shape")
        assert mib(a, "MPTcpExtRmAddr") == before, f"a took a forged IPv6 RM_ADDR ({sent} sent)"
        assert table(tb, "a") == EXPECTED6["a"]  # the connection is whole
        print(f"enforce, IPv6: {sent} forged RM_ADDR segments, a's guard dropped {dropped()}")
    forger.close()
    xfer.kill()
    cap.stop(settle=0)


def test_an_ipv4_connection_of_an_ipv6_socket_is_handled_as_ipv4(tb):
    """A dual-stack application: an IPv6 socket connected to b's IPv4-mapped address,
    its first subflow on a's unprotected IPv4 address. The kernel names that subflow in
    IPv6 (``::ffff:10.2.0.10``); the agents take it as the IPv4 subflow it is on the wire,
    so its trust is IPv4's and enforcement guards it under the key its packets have. The
    agents keep the connection in IPv4 (docs/trusted-mptcp.md, IPv4 and IPv6)."""
    tb.start_agents(extra=["--enforce"])
    to, bind = f"::ffff:{B_TRUSTED}", f"::ffff:{A_UNTRUSTED}"
    xfer = managed_transfer(tb, expected=EXPECTED["a"], seconds=3, to=to, bind=bind)
    wait_until(lambda: len(tb.tpbt("a")["guarded"]) >= 2, 10, "a's untrusted subflows guarded")
    guarded = {tuple(g[:4]) for g in tb.tpbt("a")["guarded"]}
    # incoming orientation: from b's address to a's unprotected one, the first subflow's
    assert any(g[0] == B_TRUSTED and g[2] == A_UNTRUSTED for g in guarded), guarded
    assert all(":" not in g[0] + g[2] for g in guarded), guarded
    client, server = xfer.results()
    assert server["sha256"] == client["sha256"] and server["bytes"] == client["bytes"] > 0
    assert server["peer"] == bind  # what the server's IPv6 socket saw
