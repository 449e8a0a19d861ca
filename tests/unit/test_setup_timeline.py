"""The set-up timeline's reading of a capture (experiments/setup_timeline.py)."""

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import CookedLinuxV2
from scapy.utils import wrpcap

from experiments.setup_timeline import ALL_UP, Sighting, medians, milestones, sightings
from hosts.options import ADDR_TRUST_DEFAULT

A, A2, B, B2 = "10.1.0.10", "10.2.0.10", "10.3.0.20", "10.4.0.20"


def mptcp(subtype: int, rest: bytes = b"\x00" * 6) -> tuple[int, bytes]:
    return (30, bytes([subtype << 4, 0]) + rest)


def frame(at: float, out: bool, src, dst, sport, dport, flags, *options, ifindex=2):
    pkt = (
        CookedLinuxV2(pkttype=4 if out else 0, ifindex=ifindex, proto=0x0800)
        / IP(src=src, dst=dst)
        / TCP(sport=sport, dport=dport, flags=flags, options=list(options))
    )
    pkt.time = at
    return pkt


def test_milestones_are_read_from_both_directions_timed_from_the_syn(tmp_path):
    """A trusted set-up as a's capture shows it, with DSS-only segments, another
    connection and a kick on loopback mixed in: each milestone is the first segment of
    its kind, in milliseconds since a's SYN."""
    t0 = 100.0
    c = 40000
    frames = [
        frame(t0 - 0.5, True, A, B, 41000, 5399, "S", mptcp(0)),  # another connection
        frame(t0, True, A, B, c, 5301, "S", mptcp(0)),
        frame(t0 + 0.0006, False, B, A, 5301, c, "SA", mptcp(0)),
        frame(t0 + 0.0007, True, A, B, c, 5301, "A", mptcp(0)),
        frame(t0 + 0.0010, True, A, B, c, 5301, "A", mptcp(2)),  # data: DSS only
        # the agent's kick arrives on lo in b's name: not on the wire
        frame(t0 + 0.0015, False, B, A, 5301, c, "A", mptcp(ADDR_TRUST_DEFAULT), ifindex=1),
        frame(t0 + 0.0030, True, A, B, c, 5301, "A", mptcp(ADDR_TRUST_DEFAULT)),
        frame(t0 + 0.0040, True, A2, B, c + 1, 5301, "S", mptcp(1)),
        frame(t0 + 0.0043, True, A2, B, c + 1, 5301, "A", mptcp(1)),
        frame(t0 + 0.0050, False, B, A, 5301, c, "A", mptcp(ADDR_TRUST_DEFAULT)),
        frame(t0 + 0.0055, False, B, A, 5301, c, "A", mptcp(2), mptcp(3)),  # DSS + ADD_ADDR
        frame(t0 + 0.0065, True, A, B, c, 5301, "A", mptcp(3)),
        frame(t0 + 0.0080, True, A, B2, c + 2, 5301, "S", mptcp(1)),
        frame(t0 + 0.0083, True, A, B2, c + 2, 5301, "A", mptcp(1)),
        frame(t0 + 0.0095, True, A2, B2, c + 3, 5301, "S", mptcp(1)),
        frame(t0 + 0.0099, True, A2, B2, c + 3, 5301, "A", mptcp(1)),
    ]
    pcap = tmp_path / "a.pcap"
    wrpcap(str(pcap), frames)
    seen = sightings(pcap, {5301})[5301]
    assert len(seen) == 13  # not the other connection, the DSS-only segment or the kick
    marks = {name: round(ms, 1) for name, ms in milestones(seen, joins=3).items()}
    assert marks == {
        "MP_CAPABLE ACK sent": 0.7,
        "ADDR_TRUST sent": 3.0,
        "ADDR_TRUST received": 5.0,
        "ADD_ADDR received": 5.5,
        "ADD_ADDR echoed": 6.5,
        "first MP_JOIN SYN sent": 4.0,
        ALL_UP: 9.9,
    }
    assert ALL_UP not in milestones(seen, joins=4)  # a join never acknowledged


def test_medians_are_over_the_connections_that_reached_each_milestone_earliest_first():
    per_connection = [{ALL_UP: 9.0, "ADDR_TRUST sent": 3.0}, {ALL_UP: 7.0}, {ALL_UP: 8.0}]
    assert medians(per_connection) == {"ADDR_TRUST sent": 3.0, ALL_UP: 8.0}
    assert list(medians([{ALL_UP: 1.0, "MP_CAPABLE ACK sent": 2.0}])) == [
        ALL_UP,
        "MP_CAPABLE ACK sent",
    ]


def test_a_capture_without_the_clients_syn_has_no_timeline(tmp_path):
    pcap = tmp_path / "a.pcap"
    wrpcap(str(pcap), [frame(1.0, False, B, A, 5301, 40000, "SA", mptcp(0))])
    assert sightings(pcap, {5301, 5302}) == {5301: [], 5302: []}
    assert milestones([], joins=3) == {}


def test_a_cooked_v1_capture_is_read_too(tmp_path):
    """tcpdump before 4.99 writes Linux cooked v1, which names no interface."""
    from scapy.layers.l2 import CookedLinux

    syn = (
        CookedLinux(pkttype=4, proto=0x0800)
        / IP(src=A, dst=B)
        / TCP(sport=40000, dport=5301, flags="S", options=[mptcp(0)])
    )
    syn.time = 5.0
    pcap = tmp_path / "v1.pcap"
    wrpcap(str(pcap), [syn])
    assert sightings(pcap, {5301})[5301] == [Sighting(0.0, True, 0x02, frozenset({0}))]
