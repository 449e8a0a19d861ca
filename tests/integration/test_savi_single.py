"""SAVI on one access switch: legitimate traffic passes, spoofing of every kind does not.

Each test starts its own testbed (about a second), so no state leaks between them.
Spoofed packets are checked where it matters, at the victim, with a capture; the
controller's counters must agree.
"""

import json
import re
import subprocess

import pytest

from controller.trust import generate_keypair
from tests.integration.tools import Capture, bindings, send_frames, stat, wait_until
from topologies.builder import Testbed
from topologies.single import SingleSwitchTopo

H1, H2, H3 = "00:00:00:00:00:01", "00:00:00:00:00:02", "00:00:00:00:00:03"


@pytest.fixture
def tb(tmp_path):
    with Testbed(SingleSwitchTopo(hosts=3), log_dir=str(tmp_path / "tb")) as t:
        yield t


def test_fresh_network_loses_no_packet_and_binds_everyone(tb):
    # The first packet of each host (its ARP claim) is re-injected, so nothing is lost.
    assert tb.net.pingAll(timeout=2) == 0.0
    got = {(b["ip"], b["port"], b["mac"], b["source"]) for b in bindings(tb) if "." in b["ip"]}
    assert got == {
        ("10.0.0.1", 1, H1, "fcfs"),
        ("10.0.0.2", 2, H2, "fcfs"),
        ("10.0.0.3", 3, H3, "fcfs"),
    }


def test_tcp_transfer_is_complete(tb):
    h1, h2 = tb.net["h1"], tb.net["h2"]
    server = h2.popen(
        ["sh", "-c", "socat -u TCP-LISTEN:5001,reuseaddr - | wc -c"],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: ":5001" in h2.cmd("ss -Hltn sport = :5001"), 10, "socat to listen")
    h1.cmd("head -c 20000000 /dev/zero | socat -u - TCP:10.0.0.2:5001")
    out, _ = server.communicate(timeout=60)
    assert int(out) == 20_000_000


def test_spoofed_ipv4_sources_and_macs_are_dropped(tb, tmp_path):
    tb.net.pingAll(timeout=2)
    h1, h3 = tb.net["h1"], tb.net["h3"]
    cap = Capture(h3, "h3-eth0", "udp port 9999", tmp_path / "v.pcap")
    dst = "Ether(dst='00:00:00:00:00:03')/IP(dst='10.0.0.3',src='{src}')/UDP(sport={sport},dport=9999)"
    before = stat(tb, 1, "spoofed_dropped_switch")
    send_frames(h1, "h1-eth0", dst.format(src="10.0.0.1", sport=1), count=5)  # genuine
    send_frames(h1, "h1-eth0", dst.format(src="10.0.0.2", sport=2), count=5)  # a neighbour's
    send_frames(h1, "h1-eth0", dst.format(src="198.51.100.7", sport=3), count=5)  # off-link
    spoofed_mac = dst.replace("Ether(", "Ether(src='00:00:00:00:00:99',").format(
        src="10.0.0.1", sport=4
    )
    send_frames(h1, "h1-eth0", spoofed_mac, count=5)
    cap.stop()
    assert cap.count("udp src port 1") == 5  # the capture works
    assert cap.count("udp src port 2 or udp src port 3 or udp src port 4") == 0
    wait_until(lambda: stat(tb, 1, "spoofed_dropped_switch") >= before + 15, 5, "drop counters")


def test_ipv6_binding_and_spoofing(tb, tmp_path):
    h1, h2, h3 = tb.net["h1"], tb.net["h2"], tb.net["h3"]
    for i, h in enumerate((h1, h2, h3), start=1):
        h.cmd(f"ip -6 addr add 2001:db8::{i}/64 dev h{i}-eth0")
    wait_until(
        lambda: len([b for b in bindings(tb) if b["ip"].startswith("2001:db8")]) == 3,
        10,
        "IPv6 bindings from duplicate address detection",
    )
    # The bound address reaches its neighbour once duplicate address detection is over
    # (the bindings come from its first probe; the address is tentative for 1-2 s after;
    # the first echo may go while neighbour discovery passes through the controller).
    for i, h in enumerate((h1, h2), start=1):
        wait_until(
            lambda h=h, i=i: "2001:db8" not in h.cmd(f"ip -6 addr show dev h{i}-eth0 tentative"),
            10,
            f"h{i}'s address to leave DAD",
        )
    assert re.search(r", [12] received", h1.cmd("ping -6 -c2 -W2 2001:db8::2"))
    # Spoofed IPv6 source, and a neighbour advertisement stealing h2's address.
    cap = Capture(h3, "h3-eth0", "udp port 9999 or icmp6", tmp_path / "v6.pcap")
    frame = "Ether(dst='00:00:00:00:00:03')/IPv6(dst='2001:db8::3',src='{src}')/UDP(sport={sport},dport=9999)"
    send_frames(h1, "h1-eth0", frame.format(src="2001:db8::1", sport=1), count=3)
    send_frames(h1, "h1-eth0", frame.format(src="2001:db8::2", sport=2), count=3)
    na = (
        "Ether(src='00:00:00:00:00:01',dst='00:00:00:00:00:03')/IPv6(src='2001:db8::1',"
        "dst='2001:db8::3')/ICMPv6ND_NA(tgt='2001:db8::2',R=0,S=0,O=1)/"
        "ICMPv6NDOptDstLLAddr(lladdr='00:00:00:00:00:01')"
    )
    send_frames(h1, "h1-eth0", na, count=3)
    cap.stop()
    assert cap.count("udp src port 1") == 3
    assert cap.count("udp src port 2") == 0
    stolen = [
        x for x in cap.lines("icmp6 and ether src 00:00:00:00:00:01") if "tgt is 2001:db8::2" in x
    ]
    assert stolen == []
    neigh = h3.cmd("ip -6 neigh show 2001:db8::2")
    assert H1 not in neigh
    (b,) = bindings(tb, ip="2001:db8::2")
    assert b["port"] == 2


def test_arp_spoofing_against_a_live_owner_fails(tb, tmp_path):
    tb.net.pingAll(timeout=2)
    h1, h3 = tb.net["h1"], tb.net["h3"]
    cap = Capture(h3, "h3-eth0", "arp", tmp_path / "arp.pcap")
    # Gratuitous ARP: h1 claims h2's address.
    garp = (
        "Ether(src='00:00:00:00:00:01',dst='ff:ff:ff:ff:ff:ff')/ARP(op=2,"
        "hwsrc='00:00:00:00:00:01',psrc='10.0.0.2',pdst='10.0.0.2')"
    )
    send_frames(h1, "h1-eth0", garp, count=3)
    wait_until(lambda: stat(tb, 1, "rejected_claims") >= 1, 5, "the claim to be refused")
    cap.stop()
    assert cap.count("arp and ether src 00:00:00:00:00:01") == 0
    assert H1 not in h3.cmd("ip neigh show 10.0.0.2")
    (b,) = bindings(tb, ip="10.0.0.2")
    assert (b["port"], b["mac"]) == (2, H2)
    assert ", 0% packet loss" in h3.cmd("ping -c1 -W2 10.0.0.2")


def test_claim_of_a_dead_owners_address_moves_it(tb):
    tb.net.pingAll(timeout=2)
    h1, h2 = tb.net["h1"], tb.net["h2"]
    h2.cmd("ip link set h2-eth0 arp off")  # h2 is silent, but its port stays up
    h1.cmd("ip addr add 10.0.0.2/24 dev h1-eth0")
    h1.cmd("arping -c1 -U -I h1-eth0 -s 10.0.0.2 10.0.0.2")
    b = wait_until(lambda: bindings(tb, ip="10.0.0.2", port=1), 5, "the address to move")
    assert b[0]["mac"] == H1


def test_per_port_binding_limit(tb):
    tb.net.pingAll(timeout=2)
    h1 = tb.net["h1"]
    existing = len(bindings(tb, port=1))  # its IPv4 address and its IPv6 link-local
    claims = (
        f"[Ether(src='{H1}',dst='ff:ff:ff:ff:ff:ff')/ARP(hwsrc='{H1}',"
        "psrc=f'10.0.0.{i}',pdst='10.0.0.254') for i in range(100, 120)]"
    )
    send_frames(h1, "h1-eth0", claims)
    limit = 8  # the controller's default max_bindings_per_port
    wait_until(lambda: stat(tb, 1, "rejected_claims") >= 20 - (limit - existing), 5, "refusals")
    assert len(bindings(tb, port=1)) == limit
    assert ", 0% packet loss" in h1.cmd("ping -c1 -W2 10.0.0.2")  # h1 still works
    assert ", 0% packet loss" in tb.net["h2"].cmd("ping -c1 -W2 10.0.0.3")  # others too


def test_the_switch_commits_the_binding_bundles(tb):
    """Binding flows go to Open vSwitch in bundles (OpenFlow 1.3's ONF extension, the
    default; controller/batches.py): the real switch commits them, refuses none, and a
    burst of claims ends with each claimed address's flows in and forwarding."""
    assert tb.net.pingAll(timeout=2) == 0.0
    h1 = tb.net["h1"]
    burst = [f"10.0.0.{i}" for i in range(100, 106)]  # within the port's limit of 8
    claims = (
        f"[Ether(src='{H1}',dst='ff:ff:ff:ff:ff:ff')/ARP(hwsrc='{H1}',"
        f"psrc=ip,pdst=ip) for ip in {burst!r}]"
    )
    send_frames(h1, "h1-eth0", claims)
    wait_until(lambda: {b["ip"] for b in bindings(tb, port=1)} >= set(burst), 5, "the bindings")
    flows = tb.net["s1"].dpctl("dump-flows", "-O", "OpenFlow13")
    for ip in burst:
        assert re.search(rf"nw_src={re.escape(ip)}\b", flows)
        assert re.search(rf"arp_spa={re.escape(ip)}\b", flows)
    log = (tb.dir / "controller.log").read_text()
    assert "takes bundles: the first" in log
    assert "refused a bundle" not in log and "error type" not in log
    h1.cmd(f"ip addr add {burst[-1]}/24 dev h1-eth0")
    assert ", 0% packet loss" in h1.cmd(f"ping -c1 -W2 -I {burst[-1]} 10.0.0.2")


def test_malformed_packets_are_counted_not_fatal(tb):
    h1 = tb.net["h1"]
    junk = [
        "Ether(src='00:00:00:00:00:01',dst='ff:ff:ff:ff:ff:ff',type=0x0806)/Raw(b'\\x00\\x01\\x08')",
        "Ether(src='00:00:00:00:00:01',dst='ff:ff:ff:ff:ff:ff')/ARP(hwlen=9)",
        "Ether(src='00:00:00:00:00:01',dst='ff:ff:ff:ff:ff:ff')/IP(src='0.0.0.0',dst='255.255.255.255')"
        "/UDP(sport=68,dport=67)/Raw(b'\\x01\\x01\\x06' + b'\\x00'*40)",
        "Ether(src='00:00:00:00:00:01',dst='33:33:00:00:00:01')/IPv6(src='::',dst='ff02::1')"
        "/ICMPv6ND_NS(tgt='2001:db8::9')/Raw(b'\\x01\\x00')",
    ]
    for frame in junk:
        send_frames(h1, "h1-eth0", frame)
    wait_until(lambda: stat(tb, 1, "malformed") >= 4, 5, "malformed counter")
    assert tb.net.pingAll(timeout=2) == 0.0  # the controller still works
    assert tb.controller.poll() is None


def test_port_down_removes_bindings(tb):
    tb.net.pingAll(timeout=2)
    assert bindings(tb, ip="10.0.0.1")
    subprocess.run(["ip", "link", "set", "s1-eth1", "down"], check=True)
    wait_until(lambda: not bindings(tb, port=1), 5, "port 1's bindings to go")
    assert bindings(tb, ip="10.0.0.2")


def test_controller_restart_is_fail_secure_and_keeps_bindings(tb, tmp_path):
    tb.net.pingAll(timeout=2)
    before = {(b["ip"], b["port"], b["mac"], b["source"]) for b in bindings(tb)}
    tb.stop_controller()
    h1, h2, h3 = tb.net["h1"], tb.net["h2"], tb.net["h3"]
    # Controller down: bound traffic flows, spoofed traffic is still dropped.
    assert ", 0% packet loss" in h1.cmd("ping -c2 -W2 10.0.0.3")
    cap = Capture(h3, "h3-eth0", "udp port 9999", tmp_path / "down.pcap")
    send_frames(
        h1,
        "h1-eth0",
        "Ether(dst='00:00:00:00:00:03')/IP(src='10.0.0.2',dst='10.0.0.3')/UDP(dport=9999)",
        count=5,
    )
    cap.stop()
    assert cap.count() == 0
    tb.start_controller()
    wait_until(
        lambda: {(b["ip"], b["port"], b["mac"], b["source"]) for b in bindings(tb)} == before,
        10,
        "bindings recovered from the switch",
    )
    assert tb.net.pingAll(timeout=2) == 0.0
    h2.cmd(
        "ip addr add 10.0.0.42/24 dev h2-eth0 && arping -c1 -U -I h2-eth0 -s 10.0.0.42 10.0.0.42"
    )
    wait_until(lambda: bindings(tb, ip="10.0.0.42", port=2), 5, "a new binding after restart")


def test_static_bindings_through_the_api(tb):
    status, body = tb.request(
        "POST", "/savi/bindings", {"dpid": 1, "port": 3, "mac": H3, "ip": "10.0.0.33"}
    )
    assert status == 201 and body["source"] == "static"
    (b,) = bindings(tb, ip="10.0.0.33")
    assert (b["port"], b["source"], b["expires_in"]) == (3, "static", None)
    h3 = tb.net["h3"]
    h3.cmd("ip addr add 10.0.0.33/24 dev h3-eth0")
    assert ", 0% packet loss" in h3.cmd("ping -c1 -W2 -I 10.0.0.33 10.0.0.1")
    assert tb.request("POST", "/savi/bindings", {"dpid": 1, "ip": "x"})[0] == 400
    assert tb.request("DELETE", "/savi/bindings", {"ip": "10.0.0.33"})[0] == 200
    assert tb.request("DELETE", "/savi/bindings", {"ip": "10.0.0.33"})[0] == 404
    assert not bindings(tb, ip="10.0.0.33")


def test_writes_need_the_runs_credential_and_attackers_have_no_way_in(tb):
    """From the management network (h1) reads work and writes without the credential are
    refused; the other hosts have no management link at all."""
    h1, h2 = tb.net["h1"], tb.net["h2"]
    url = f"{tb.mgmt_url}/savi/bindings"
    assert isinstance(json.loads(h1.cmd(f"curl -s -m 5 {url}")), list)
    body = '{"dpid": 1, "port": 3, "mac": "00:00:00:00:00:03", "ip": "10.0.0.44"}'
    for auth in ("", "-H 'Authorization: Bearer wrong-credential-0000000'"):
        code = h1.cmd(
            f"curl -s -o /dev/null -w '%{{http_code}}' -m 5 -X POST {auth} "
            f"-H 'Content-Type: application/json' -d '{body}' {url}"
        )
        assert code.strip() == "401", code
        code = h1.cmd(
            f"curl -s -o /dev/null -w '%{{http_code}}' -m 5 -X DELETE {auth} "
            f'-d \'{{"ip": "10.0.0.1"}}\' {url}'
        )
        assert code.strip() == "401", code
    assert not bindings(tb, ip="10.0.0.44")
    assert "h2-mgmt" not in h2.cmd("ip -o link")
    assert h2.cmd(f"curl -s -o /dev/null -w '%{{http_code}}' -m 2 {url}").strip() == "000"


def test_hosts_fetch_signed_trust_over_the_management_network(tb):
    tb.net.pingAll(timeout=2)
    h1 = tb.net["h1"]
    out = h1.cmd(
        f"{tb.python} -m hosts.trust_client --url {tb.mgmt_url} --pubkey-file {tb.pubkey_file}"
    )
    listed = {line.split("\t")[0] for line in out.splitlines() if "\t" in line}
    assert {"10.0.0.1", "10.0.0.2", "10.0.0.3"} <= listed
    # The management network is not reachable from the data network's addresses.
    assert "100% packet loss" in h1.cmd(
        f"ping -c1 -W1 -I h1-eth0 {tb.mgmt_url.split('/')[2].split(':')[0]}"
    )
    generate_keypair(tb.dir / "other.key", tb.dir / "other.pub")  # another controller's
    bad = h1.cmd(
        f"{tb.python} -m hosts.trust_client --url {tb.mgmt_url} "
        f"--pubkey-file {tb.dir / 'other.pub'}; echo rc=$?"
    )
    assert "does not verify" in bad and "rc=1" in bad
