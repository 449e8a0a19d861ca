"""Confinement per option category and phase, on a fixed capture decoded by tshark, with
packets labelled from the senders' TPBT histories."""

import pytest

from experiments.confinement import (
    HistoryLabels,
    Packet,
    StaticLabels,
    category,
    confine,
    options_of,
)
from hosts.options import (
    AddAddr,
    AddrTrust,
    MpPrio,
    RemoveAddr,
    encode,
)
from topologies.dualhomed import A_TRUSTED, A_UNTRUSTED, B_TRUSTED, B_UNTRUSTED, M2

TAG = 0x7A7A
HOSTS = {"a": {A_TRUSTED, A_UNTRUSTED}, "b": {B_TRUSTED, B_UNTRUSTED}}
T0 = 1_800_000_000.0
SYN, SYNACK, ACK = 0x02, 0x12, 0x10
MP_CAPABLE = bytes([30, 4, 0x01, 0x81])
MP_JOIN_SYN = bytes([30, 12, 0x10, 0x02]) + bytes(8)
DSS = bytes([30, 8, 0x20, 0x01]) + bytes(4)
HMAC8 = bytes(8)
ADDR_TRUST = encode(AddrTrust(addr_id=1, counter=1, lifetime=30, hmac=HMAC8))
ADDR_TRUST_ECHO = encode(AddrTrust(addr_id=1, counter=1, lifetime=30, hmac=HMAC8, echo=True))
WITHDRAWAL = encode(AddrTrust(addr_id=1, counter=2, lifetime=0, hmac=HMAC8, withdraw=True))


def add_addr(address, echo=False):
    return encode(AddAddr(2, address, echo=echo, hmac=None if echo else HMAC8))


# (ms after T0, src, sport, dst, dport, flags, options, ip id)
FIRST = (A_UNTRUSTED, 40000, B_TRUSTED, 5201)  # the first subflow: a's unprotected address
FIRST_BACK = (B_TRUSTED, 5201, A_UNTRUSTED, 40000)
JOIN = (A_TRUSTED, 40001, B_TRUSTED, 5201)
JOIN_BACK = (B_TRUSTED, 5201, A_TRUSTED, 40001)
CAPTURE = [
    (0, *FIRST, SYN, MP_CAPABLE, 1),
    (1, *FIRST_BACK, SYNACK, MP_CAPABLE, 2),
    (2, *FIRST, ACK, MP_CAPABLE, 3),
    (10, *FIRST_BACK, ACK, add_addr(B_UNTRUSTED), 4),  # before any trusted subflow
    (15, *FIRST, ACK, DSS, 5),  # data: not control
    (20, *JOIN, SYN, MP_JOIN_SYN, 6),
    (21, *JOIN_BACK, SYNACK, MP_JOIN_SYN, 7),
    (22, *JOIN, ACK, MP_JOIN_SYN, 8),
    (30, *JOIN, ACK, ADDR_TRUST, 9),  # a's TPBT does not trust the join yet
    (40, *JOIN, ACK, DSS + encode(RemoveAddr((3,))), 10),  # trusted by now
    (45, *FIRST_BACK, ACK, add_addr(A_UNTRUSTED, echo=True), 11),  # b: after, untrusted
    (46, *JOIN_BACK, ACK, ADDR_TRUST_ECHO, 12),
    (47, *FIRST_BACK, ACK, add_addr(M2, echo=True), 13),  # echo of a forged ADD_ADDR
    (48, *FIRST_BACK, ACK, encode(MpPrio(True)), TAG),  # the forger's
    (50, M2, 50000, A_UNTRUSTED, 40000, ACK, encode(MpPrio(True)), 14),  # not a's peer
    (60, *JOIN, ACK, WITHDRAWAL, 15),
    (65, *FIRST_BACK, 0x14, bytes([30, 4, 0x80, 0x01]), 17),  # MP_TCPRST on an RST: left out
    (70, *FIRST, ACK, encode(MpPrio(True)), 16),  # after the forgery worked: left out
]
HISTORY_A = [
    (T0 + 0.022, 1, A_TRUSTED, B_TRUSTED, False),
    (T0 + 0.035, 1, A_TRUSTED, B_TRUSTED, True),
    (T0 + 0.002, 1, A_UNTRUSTED, B_TRUSTED, False),
]
HISTORY_B = [(T0 + 0.033, 9, B_TRUSTED, A_TRUSTED, True)]


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    """The capture written by scapy and read back as the trial reads its captures."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import wrpcap

    from experiments.trial import decode

    pkts = []
    for ms, src, sport, dst, dport, flags, options, ip_id in CAPTURE:
        opts = [("NOP", None), ("NOP", None)] + [
            (o[0], o[2:]) for o in split(options)
        ]  # one scapy option per MPTCP option
        p = IP(src=src, dst=dst, id=ip_id) / TCP(
            sport=sport, dport=dport, flags=flags, options=opts
        )
        p.time = T0 + ms / 1000
        pkts.append(p)
    path = tmp_path_factory.mktemp("cap") / "a.pcap"
    wrpcap(str(path), pkts)
    return decode(path)


def split(options: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(options):
        out.append(options[i : i + options[i + 1]])
        i += options[i + 1]
    return out


def test_tshark_decodes_every_packet_but_dss_only_ones(decoded):
    assert len(decoded) == len(CAPTURE) - 1
    # NOP NOP, the option, and the end-of-options padding scapy adds
    assert decoded[0] == Packet(T0, *FIRST, 1, SYN, bytes([1, 1]) + MP_CAPABLE + bytes(2))


def test_per_category_and_phase_labelled_from_the_tpbt_histories(decoded):
    c = confine(decoded, HistoryLabels([HISTORY_A, HISTORY_B]), HOSTS, TAG, until=T0 + 0.070)
    seen = {k: v for k, v in c.control.items() if v[1]}
    assert seen == {
        ("add_addr", "before"): [0, 1],
        ("addr_trust", "before"): [0, 1],  # on the trusted pair, but not yet in a's TPBT
        ("rm_addr", "after"): [1, 1],
        ("add_addr_echo", "after"): [0, 1],
        ("addr_trust_echo", "after"): [1, 1],
        ("withdrawal", "after"): [1, 1],
    }
    assert c.handshake == [0, 6]  # the join's handshake went before its trust
    assert c.started_at == T0 and c.trusted_up_at == pytest.approx(T0 + 0.035)
    assert c.totals() == (3, 6)


def test_hosts_without_agents_are_labelled_from_the_controllers_export(decoded):
    c = confine(decoded, StaticLabels({A_TRUSTED, B_TRUSTED}), HOSTS, TAG)
    assert c.control[("addr_trust", "after")] == [1, 1]  # the join is up: trusted at once
    assert c.control[("mp_prio", "after")] == [0, 1]  # nothing worked: a's MP_PRIO counts
    assert c.trusted_up_at == pytest.approx(T0 + 0.022)
    nothing = confine(decoded, StaticLabels(set()), HOSTS, TAG)
    assert nothing.totals()[0] == 0 and nothing.trusted_up_at is None
    assert all(phase == "before" for (_, phase), v in nothing.control.items() if v[1])


def test_categories():
    assert category(AddAddr(1, M2, hmac=HMAC8), {A_TRUSTED}) is None
    assert category(AddAddr(1, A_TRUSTED, hmac=HMAC8, trust=True), {A_TRUSTED}) == "add_addr"
    assert category(MpPrio(False), set()) == "mp_prio"


def _tshark_selects(path) -> list[str]:
    """What tshark alone selects from a capture, as decode asks it (no prefilter)."""
    import subprocess

    from experiments.trial import FIELDS, NOT_DSS_ONLY

    return subprocess.run(
        ["tshark", "-r", str(path), "-Y", NOT_DSS_ONLY, "-T", "fields"]
        + [a for f in FIELDS for a in ("-e", f)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_the_dss_prefilter_drops_only_what_tshark_would_not_select(tmp_path, family):
    """Data segments (NOP NOP TIMESTAMP, one DSS of any length, padding) are dropped
    before tshark; a DSS followed by anything, even a 3-byte MP_PRIO, is kept. In IPv4
    and IPv6 (whose flow label stands for the IP ID)."""

    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import wrpcap

    if family == "v4":
        header = IP(src=B_TRUSTED, dst=A_TRUSTED, id=7)
    else:
        header = IPv6(src="2001:db8:3::20", dst="2001:db8:1::10", fl=7)

    from experiments.trial import decode

    ts = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
    dss = {n: bytes([30, n, 0x20, 0x01]) + bytes(n - 4) for n in (8, 12, 16, 18, 20, 22, 28)}
    pkts = []
    for n, option in dss.items():
        for extra in (b"", encode(MpPrio(True)), add_addr(B_UNTRUSTED)):
            if 12 + n + len(extra) > 40:
                continue
            opts = ts + [(30, option[2:])] + ([(30, extra[2:])] if extra else [])
            pkts.append(header.copy() / TCP(flags="A", options=opts))
    path = tmp_path / "data.pcap"
    wrpcap(str(path), pkts)
    plain = _tshark_selects(path)
    kept = decode(path)
    assert len(kept) == len(plain) == sum(1 for p in pkts if len(p[TCP].options) > 4)
    assert all(any(isinstance(o, MpPrio | AddAddr) for o in options_of(p.options)) for p in kept)
    assert {(p.src, p.dst, p.ip_id) for p in kept} == {(header.src, header.dst, 7)}


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_every_attacker_shape_passes_the_prefilter_as_tshark_sees_it(tmp_path, family):
    """The forger's packets in every shape of experiments/shapes.py — fragments, 40 bytes
    of IPv4 options or an IPv6 destination options header, no timestamp where a 28-byte
    ADD_ADDR leaves no room — reach tshark and are decoded once each, as tshark alone
    decodes them (fragments reassembled): the trial dates its early attempt from them."""

    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import wrpcap

    from experiments.shapes import SHAPES
    from experiments.trial import decode

    if family == "v4":
        header = IP(src=B_TRUSTED, dst=A_TRUSTED, id=7)
    else:
        header = IPv6(src="2001:db8:3::20", dst="2001:db8:1::10", fl=7)
    base = header / TCP(
        sport=5201,
        dport=40000,
        flags="A",
        options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))],
    )
    options = [encode(MpPrio(True)), encode(AddAddr(42, "2001:db8:2::66", hmac=HMAC8))]
    pkts = [p for o in options for shape in SHAPES for p in SHAPES[shape](base, o)]
    path = tmp_path / "shapes.pcap"
    wrpcap(str(path), pkts)
    plain = _tshark_selects(path)
    kept = decode(path)
    assert len(kept) == len(plain) == len(options) * len(SHAPES)
    assert {(p.src, p.dst, p.ip_id) for p in kept} == {(header.src, header.dst, 7)}
