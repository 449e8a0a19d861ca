"""DHCPv6 snooping and RA guard without a switch: the parser (fuzzed), the memory of
who asked, and the app's decisions on a fake datapath."""

import struct

import pytest

from controller.dhcp6 import Dhcp6Clients, duid_mac
from controller.packets import REPLY, SOLICIT, Dhcp6, Lease6, Malformed, parse_frame
from tests.fakes import packet_in
from tests.unit import frames
from tests.unit.test_pipeline import DHCP_PORT, H1, H2, H3, app, dp  # noqa: F401 (fixtures)

DUID3 = b"\x00\x03\x00\x01" + bytes.fromhex("000000000003")


def test_a_reply_names_its_client_and_the_addresses_it_gives():
    f = parse_frame(frames.dhcp6("reply", H3, addresses=["2001:db8::100", "2001:db8::101"]))
    assert f.payload == Dhcp6(
        REPLY,
        0x1234,
        DUID3,
        (Lease6("2001:db8::100", 120), Lease6("2001:db8::101", 120)),
        True,
    )
    solicit = parse_frame(frames.dhcp6("solicit", H3)).payload
    assert (solicit.msg_type, solicit.client_duid, solicit.from_server) == (SOLICIT, DUID3, False)


def test_an_ia_with_an_error_status_gives_nothing():
    f = parse_frame(frames.dhcp6("reply", H3, addresses=["2001:db8::100"], status=2))
    assert f.payload.leases == ()


def test_a_lease_of_a_link_local_address_is_malformed():
    with pytest.raises(Malformed, match="lease of fe80::"):
        parse_frame(frames.dhcp6("reply", H3, addresses=["fe80::1"]))


def test_dhcpv6_behind_extension_headers_is_parsed_and_fragments_are_refused():
    plain = frames.dhcp6("reply", H3, addresses=["2001:db8::100"])
    hop_by_hop = b"\x11\x00" + b"\x01\x04\x00\x00\x00\x00"  # next: UDP; PadN
    ipv6 = bytearray(plain[14:54])
    ipv6[6] = 0  # next header: hop-by-hop options
    ipv6[4:6] = struct.pack("!H", len(plain) - 54 + 8)
    behind = plain[:14] + bytes(ipv6) + hop_by_hop + plain[54:]
    assert parse_frame(behind).payload == parse_frame(plain).payload
    fragment = b"\x11\x00\x00\x01\x00\x00\x00\x07"  # offset 0, more fragments
    ipv6[6] = 44
    with pytest.raises(Malformed, match="fragment"):
        parse_frame(plain[:14] + bytes(ipv6) + fragment + plain[54:])


@pytest.mark.parametrize("kind", ["solicit", "reply", "release"])
def test_every_truncation_is_malformed_or_parsed(kind):
    frame = frames.dhcp6(kind, H3, addresses=["2001:db8::100"])
    for cut in range(len(frame)):
        frames.parse_or_malformed(frame[:cut])


def test_random_corruption_never_raises_anything_else():
    base = [frames.dhcp6(k, H3, addresses=["2001:db8::100"]) for k in ("reply", "release")]
    base.append(frames.ra(H2))
    for data in frames.corruptions(base, seed=11, rounds=5000):
        frames.parse_or_malformed(data)


def test_the_memory_of_who_asked_is_per_port_bounded_and_expires():
    clients = Dhcp6Clients(ttl=60, per_port=2)
    clients.asked(1, 3, H3, xid=7, duid=DUID3, now=0)
    assert clients.asker(1, 7, DUID3, H3, now=1).port == 3
    assert clients.asker(1, 7, b"another duid", H3, now=1) is None
    assert clients.asker(1, 7, DUID3, H2, now=1) is None  # a REPLY to someone else
    assert clients.asker(1, 7, DUID3, H3, now=61) is None  # too old
    for xid in range(100, 200):  # a flood on port 2 forgets only port 2's
        clients.asked(1, 2, H2, xid=xid, duid=b"\x00\x02x", now=2)
    assert clients.asker(1, 7, DUID3, H3, now=3).mac == H3 and len(clients) == 3


def test_a_transaction_asked_from_two_places_binds_nothing():
    clients = Dhcp6Clients()
    assert clients.asked(1, 3, H3, xid=7, duid=b"\x00\x02en", now=0) is False
    assert clients.asked(1, 2, H2, xid=7, duid=b"\x00\x02en", now=1) is True  # a copy
    assert clients.asker(1, 7, b"\x00\x02en", H3, now=2) is None
    assert clients.asker(1, 7, b"\x00\x02en", H2, now=2) is None


def test_a_duid_that_names_a_mac_binds_only_for_that_mac():
    assert duid_mac(DUID3) == H3
    assert duid_mac(b"\x00\x01\x00\x01" + b"\x2a" * 4 + bytes.fromhex("000000000003")) == H3
    assert duid_mac(b"\x00\x02" + b"\x00\x00\x01\x37" + b"x") is None  # DUID-EN
    clients = Dhcp6Clients()
    clients.asked(1, 2, H2, xid=9, duid=DUID3, now=0)  # h2, alone, with h3's DUID-LL
    assert clients.asker(1, 9, DUID3, H2, now=1) is None


def v6(datapath, port, mac, src, **extra):
    match = dict(in_port=port, eth_src=mac, eth_type=0x86DD, ipv6_src=src, ip_proto=6)
    return datapath.table.lookup(**{**match, **extra})


def test_a_snooped_reply_binds_with_its_lifetime_and_release_unbinds(app, dp):  # noqa: F811
    server = dict(in_port=DHCP_PORT, eth_type=0x86DD, ip_proto=17, udp_src=547, udp_dst=546)
    assert dp.table.lookup(**server) == "controller"
    app.packet_in(packet_in(dp, 3, frames.dhcp6("solicit", H3)))
    dp.clear()
    reply = frames.dhcp6("reply", H3, addresses=["2001:db8::100"], lifetime=120)
    app.packet_in(packet_in(dp, DHCP_PORT, reply))
    assert [o.data for o in dp.packet_outs()] == [reply]
    (b,) = app.bindings_json()
    assert (b["port"], b["mac"], b["ip"], b["source"], b["expires_in"]) == (
        3,
        H3,
        "2001:db8::100",
        "dhcp",
        120,
    )
    assert v6(dp, 3, H3, "2001:db8::100") == "normal"
    # Another host's RELEASE of the address is ignored; the client's own removes it.
    app.packet_in(packet_in(dp, 2, frames.dhcp6("release", H2, addresses=["2001:db8::100"])))
    assert len(app.bindings_json()) == 1
    app.packet_in(packet_in(dp, 3, frames.dhcp6("release", H3, addresses=["2001:db8::100"])))
    assert app.bindings_json() == [] and v6(dp, 3, H3, "2001:db8::100") == "drop"


def test_a_copied_request_or_a_borrowed_duid_steals_no_lease(app, dp):  # noqa: F811
    """h2 shares h3's switch and sees its multicast REQUEST. A copy of it from h2's port
    (h2's MAC) makes the transaction bind nothing; a transaction of h2's own with h3's
    DUID binds nothing either (the DUID names h3's MAC); and once h3 holds its lease, a
    REPLY that would give the address to another port does not move it."""
    duid_en = b"\x00\x02\x00\x00\x01\x37en"
    app.packet_in(packet_in(dp, 3, frames.dhcp6("request", H3, xid=5, duid=duid_en)))
    app.packet_in(packet_in(dp, 2, frames.dhcp6("request", H2, xid=5, duid=duid_en)))
    for mac in (H3, H2):  # the server answers each copy to its sender
        reply = frames.dhcp6("reply", mac, xid=5, duid=duid_en, addresses=["2001:db8::9"])
        app.packet_in(packet_in(dp, DHCP_PORT, reply))
    assert app.bindings_json() == [] and app.table.counters[(1, 2)].rejected_claims == 1
    app.packet_in(packet_in(dp, 2, frames.dhcp6("request", H2, xid=6, duid=DUID3)))
    reply = frames.dhcp6("reply", H2, xid=6, duid=DUID3, addresses=["2001:db8::9"])
    app.packet_in(packet_in(dp, DHCP_PORT, reply))
    assert app.bindings_json() == []
    app.packet_in(packet_in(dp, 3, frames.dhcp6("request", H3, xid=7)))
    app.packet_in(
        packet_in(dp, DHCP_PORT, frames.dhcp6("reply", H3, xid=7, addresses=["2001:db8::9"]))
    )
    (b,) = app.bindings_json()
    assert (b["port"], b["mac"]) == (3, H3)
    app.packet_in(packet_in(dp, 2, frames.dhcp6("request", H2, xid=8, duid=duid_en)))
    app.packet_in(
        packet_in(
            dp, DHCP_PORT, frames.dhcp6("reply", H2, xid=8, duid=duid_en, addresses=["2001:db8::9"])
        )
    )
    (b,) = app.bindings_json()
    assert (b["port"], b["mac"]) == (3, H3)


def test_a_reply_binds_only_for_the_client_that_asked(app, dp):  # noqa: F811
    # No client message in this transaction, or another client's DUID: nothing bound.
    app.packet_in(packet_in(dp, DHCP_PORT, frames.dhcp6("reply", H3, addresses=["2001:db8::7"])))
    app.packet_in(packet_in(dp, 3, frames.dhcp6("solicit", H3, xid=9)))
    app.packet_in(
        packet_in(dp, DHCP_PORT, frames.dhcp6("reply", H2, xid=9, addresses=["2001:db8::8"]))
    )
    assert app.bindings_json() == []


def test_a_lifetime_of_zero_takes_the_address_back(app, dp):  # noqa: F811
    app.packet_in(packet_in(dp, 3, frames.dhcp6("request", H3)))
    app.packet_in(packet_in(dp, DHCP_PORT, frames.dhcp6("reply", H3, addresses=["2001:db8::5"])))
    assert len(app.bindings_json()) == 1
    app.packet_in(packet_in(dp, 3, frames.dhcp6("request", H3, xid=2)))
    app.packet_in(
        packet_in(
            dp, DHCP_PORT, frames.dhcp6("reply", H3, xid=2, addresses=["2001:db8::5"], lifetime=0)
        )
    )
    assert app.bindings_json() == []


def test_rogue_dhcpv6_servers_and_router_advertisements_are_dropped(app, dp):  # noqa: F811
    rogue = dict(in_port=2, eth_type=0x86DD, ip_proto=17, udp_src=547, udp_dst=546)
    assert dp.table.lookup(**rogue) == "drop"
    assert dp.table.lookup(**dict(rogue, udp_dst=547)) == "drop"  # relay to relay too
    app.packet_in(packet_in(dp, 3, frames.dhcp6("solicit", H3)))
    dp.clear()
    app.packet_in(packet_in(dp, 2, frames.dhcp6("reply", H3, addresses=["2001:db8::66"])))
    assert dp.packet_outs() == [] and app.bindings_json() == []
    assert app.table.counters[(1, 2)].rogue_dhcp_dropped == 1
    # RA guard: even from a bound source, an RA or a redirect from an access port is
    # dropped; an uplink passes them.
    app.packet_in(packet_in(dp, 2, frames.dad_ns(H2, "fe80::200:ff:fe00:2")))
    assert v6(dp, 2, H2, "fe80::200:ff:fe00:2") == "normal"
    for kind in (134, 137):
        assert v6(dp, 2, H2, "fe80::200:ff:fe00:2", ip_proto=58, icmpv6_type=kind) == "drop"
        assert v6(dp, 50, H2, "fe80::1", ip_proto=58, icmpv6_type=kind) == "normal"
    # A router solicitation from the bound host is its own business.
    assert v6(dp, 2, H2, "fe80::200:ff:fe00:2", ip_proto=58, icmpv6_type=133) == "normal"


def test_each_drop_flow_counts_on_its_own(app, dp):  # noqa: F811
    """A port has several drop flows of one priority (an RA and a redirect rule; the
    DHCP and DHCPv6 server rules): the stats add them up, none hides another."""
    from types import SimpleNamespace

    def dropped(match: dict, action: str) -> int:
        if action != "drop":
            return 0
        server = 7 if match.get("udp_src") in (67, 547) else 0  # DHCP, DHCPv6 servers
        return {134: 3, 137: 2}.get(match.get("icmpv6_type"), server)

    body = [
        SimpleNamespace(
            cookie=cookie,
            match=dict(match),
            priority=prio,
            instructions=[] if action == "drop" else [1],
            packet_count=dropped(dict(match), action),
        )
        for (prio, match), (cookie, action) in dp.table.flows.items()
        if dict(match).get("in_port") == 2
    ]
    app.flow_stats(SimpleNamespace(msg=SimpleNamespace(datapath=dp, body=body)))
    (row,) = (r for r in app.stats_json() if r["port"] == 2)
    assert row["rogue_ra_dropped"] == 5 and row["spoofed_dropped_switch"] == 14
