"""DHCPv6 snooping and RA guard with a real dnsmasq server and real ``dhclient -6``
clients on the single switch (RFC 7513, RFC 6105)."""

import ipaddress
import subprocess

import pytest

from tests.integration.tools import Capture, bindings, send_frames, stat, wait_until
from topologies.builder import Testbed, dhcp6_address
from topologies.single import DHCP6_RANGE, DHCP6_SERVER_ADDRESS, DHCP_SERVER_PORT, SingleSwitchTopo

ROGUE_PREFIX = "2001:db8:bad::"


@pytest.fixture
def tb(tmp_path):
    topo = SingleSwitchTopo(hosts=2, dhcp=True, dhcp6=True)
    with Testbed(topo, log_dir=str(tmp_path / "tb")) as t:
        yield t


def leased6(host) -> str:
    ip = dhcp6_address(host, f"{host.name}-eth0")
    assert ip is not None, host.cmd("ip -6 addr")
    return ip


def link_local(host) -> str:
    out = host.cmd(f"ip -6 -o addr show dev {host.name}-eth0 scope link")
    return out.split("inet6 ")[1].split("/")[0]


def in_range(ip: str) -> bool:
    first, last = (ipaddress.IPv6Address(a) for a in DHCP6_RANGE)
    return first <= ipaddress.IPv6Address(ip) <= last


def test_a_dhcpv6_lease_binds_with_its_lifetime_and_passes_traffic(tb):
    h1 = tb.net["h1"]
    ip = leased6(h1)
    assert in_range(ip)
    (b,) = bindings(tb, ip=ip)
    assert (b["port"], b["mac"], b["source"]) == (1, "00:00:00:00:00:01", "dhcp")
    assert 100 < b["expires_in"] <= 120  # dnsmasq's 2-minute lease
    assert ", 0% packet loss" in h1.cmd(f"ping -6 -c1 -W2 -I {ip} {DHCP6_SERVER_ADDRESS}")
    (entry,) = (a for a in tb.get("/savi/trust")["addresses"] if a["ip"] == ip)
    assert entry["source"] == "dhcp" and 0 < entry["lifetime"] <= 120


def test_release_removes_the_binding_and_its_traffic(tb, tmp_path):
    h1 = tb.net["h1"]
    ip = leased6(h1)
    tb.dhcp6_release(h1)
    wait_until(lambda: not bindings(tb, ip=ip), 10, "the binding to go on RELEASE")
    # The address, still used by hand, is now spoofed: it never reaches the server.
    cap = Capture(tb.net["dhcp"], "dhcp-eth0", "udp port 9999", tmp_path / "r.pcap")
    send_frames(
        h1,
        "h1-eth0",
        f"Ether(dst='00:00:00:00:00:fe')/IPv6(src='{ip}',"
        f"dst='{DHCP6_SERVER_ADDRESS}')/UDP(dport=9999)",
        count=3,
    )
    cap.stop()
    assert cap.count() == 0


def test_port_down_removes_the_lease_binding(tb):
    ip = leased6(tb.net["h2"])
    assert bindings(tb, ip=ip)
    subprocess.run(["ip", "link", "set", "s1-eth2", "down"], check=True)
    wait_until(lambda: not bindings(tb, ip=ip), 5, "the binding to go on port down")


def test_a_rogue_dhcpv6_server_gets_nowhere(tb, tmp_path):
    h1, h2 = tb.net["h1"], tb.net["h2"]
    before = stat(tb, 2, "spoofed_dropped_switch")
    tb.dhcp6_release(h1)
    h2.cmd("ip -6 addr add 2001:db8:66::1/64 dev h2-eth0 nodad")
    server = (
        "dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=h2-eth0 "
        "--bind-interfaces --dhcp-authoritative "
        "--dhcp-range=2001:db8:66::10,2001:db8:66::20,64,2m "
        f"--dhcp-leasefile={tb.dir / 'rogue6.leases'}"
    )
    rogue = tb.spawn(h2, server.split(), "h2-rogue-dnsmasq.log")
    wait_until(lambda: ":547" in h2.cmd("ss -Hlun"), 10, "the rogue server to listen")
    cap = Capture(h1, "h1-eth0", "udp port 546", tmp_path / "victim.pcap")
    tb.dhcp6_client(h1)
    cap.stop()
    assert in_range(leased6(h1))
    assert "2001:db8:66::" not in h1.cmd("ip -6 addr show dev h1-eth0")
    replies = cap.lines("udp src port 547")
    assert replies and all("00:00:00:00:00:fe >" in line for line in replies), replies
    wait_until(lambda: stat(tb, 2, "spoofed_dropped_switch") > before, 5, "rogue drops counted")
    rogue.terminate()


def test_router_advertisements_pass_only_from_the_router_port(tb, tmp_path):
    h1, h2, server = tb.net["h1"], tb.net["h2"], tb.net["dhcp"]
    before = stat(tb, 2, "rogue_ra_dropped")
    cap = Capture(h1, "h1-eth0", "icmp6 and ip6[40] == 134", tmp_path / "ra.pcap")
    # A rogue RA from h2's own (bound) link-local address, with a prefix to autoconfigure.
    h1_ll, h2_ll = (link_local(h) for h in (h1, h2))
    rogue = (
        f"Ether(src='00:00:00:00:00:02',dst='33:33:00:00:00:01')/IPv6(src='{h2_ll}',"
        f"dst='ff02::1')/ICMPv6ND_RA()/ICMPv6NDOptPrefixInfo(prefix='{ROGUE_PREFIX}',"
        "prefixlen=64)"
    )
    send_frames(h2, "h2-eth0", rogue, count=3)
    redirect = (
        f"Ether(src='00:00:00:00:00:02',dst='00:00:00:00:00:01')/IPv6(src='{h2_ll}',"
        f"dst='{h1_ll}')/ICMPv6ND_Redirect(tgt='{h2_ll}',dst='{DHCP6_SERVER_ADDRESS}')"
    )
    send_frames(h2, "h2-eth0", redirect, count=2)
    # The next shape: the RA behind a hop-by-hop header (the switch matches the ICMPv6
    # type behind extension headers, and so would the host's ND code accept it).
    hidden = rogue.replace("/ICMPv6ND_RA()", "/IPv6ExtHdrHopByHop()/ICMPv6ND_RA()")
    hidden_cap = Capture(
        h1,
        "h1-eth0",
        "ip6 and ether src 00:00:00:00:00:02 and dst host ff02::1",
        tmp_path / "hidden.pcap",
    )
    send_frames(h2, "h2-eth0", hidden, count=2)
    # The positive control: the same RA, without the prefix, from the router's port.
    server_ll = link_local(server)
    send_frames(
        server,
        "dhcp-eth0",
        f"Ether(src='00:00:00:00:00:fe',dst='33:33:00:00:00:01')"
        f"/IPv6(src='{server_ll}',dst='ff02::1')/ICMPv6ND_RA()",
        count=1,
    )
    wait_until(lambda: stat(tb, 2, "rogue_ra_dropped") >= before + 7, 5, "the RA guard drops")
    cap.stop()
    hidden_cap.stop()
    assert hidden_cap.count() == 0
    seen = cap.lines()
    assert len(seen) == 1 and "00:00:00:00:00:fe >" in seen[0], seen
    assert ROGUE_PREFIX not in h1.cmd("ip -6 addr show dev h1-eth0")
    assert stat(tb, DHCP_SERVER_PORT, "rogue_ra_dropped") == 0
