"""The hosts' stale-window filter (hosts/bpf/stale_window.c), the compiled object run by
the kernel on crafted frames (BPF_PROG_TEST_RUN): a receiver's ACK loses its data ACK
(the DSS becomes NOPs, the checksum still right, every other option kept) exactly when
the peer's TCP would not take its window while the peer's MPTCP would add the data ACK to
the window TCP kept; everything else passes unchanged. Each test is one subflow (its own
port), followed ACK by ACK as the receiver sends them."""

import itertools
import os

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from hosts import bpf_syscall
from hosts.stale_window import StaleWindowFilter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF needs root")

TC_ACT_OK, TC_ACT_SHOT = 0, 2
PASS, STRIP = "passed unchanged", "data ACK stripped"
KIND_MPTCP = 30
TIMESTAMP = [("NOP", None), ("NOP", None), ("Timestamp", (5, 6))]
PORTS = itertools.count(41000)


def dss(flags: int = 0x01, data_ack: int = 7) -> tuple[int, bytes]:
    """An MPTCP DSS option (kind, body): by default a 4-byte data ACK and nothing else
    (flag 0x02: an 8-byte one)."""
    body = bytes([0x20, flags]) + data_ack.to_bytes(8 if flags & 0x02 else 4, "big")
    if flags & 0x04:  # a mapping: data sequence, subflow sequence, length, checksum
        body += bytes(4 + 4 + 2 + 2)
    return (KIND_MPTCP, body)


BARE_DATA_ACK = (dss(),)


def add_addr() -> tuple[int, bytes]:
    return (KIND_MPTCP, bytes([0x30, 1, 10, 3, 0, 20]) + b"h" * 8)


@pytest.fixture(scope="module")
def window_filter():
    f = StaleWindowFilter(f"unit-{os.getpid()}")
    fd = bpf_syscall.obj_get(f.prog)
    yield f, fd
    os.close(fd)
    f.close()


class Subflow:
    """The receiver's side of one subflow: the segments it sends, run by the program."""

    def __init__(self, window_filter, v6: bool = False):
        self.filter, self.fd = window_filter
        self.v6 = v6
        self.port = next(PORTS)

    def send(self, ack, window, seq=1000, options=BARE_DATA_ACK, flags="A", payload=b"") -> str:
        ip = (
            IPv6(src="2001:db8::2", dst="2001:db8::1")
            if self.v6
            else IP(src="10.9.0.2", dst="10.9.0.1")
        )
        segment = (
            Ether()
            / ip
            / TCP(
                sport=5001,
                dport=self.port,
                seq=seq,
                ack=ack,
                window=window,
                flags=flags,
                options=[*TIMESTAMP, *options],
            )
        )
        if payload:
            segment = segment / Raw(payload)
        return outcome(*bpf_syscall.test_run_frame(self.fd, bytes(segment)), bytes(segment))

    def stripped(self) -> int:
        return self.filter.counters()["stripped"]


def outcome(verdict: int, out: bytes, sent: bytes) -> str:
    """What the program did to ``sent``: passed it as it was, or took out its DSS and
    nothing else, with a TCP checksum still right. Anything else fails the test."""
    assert verdict == TC_ACT_OK, "the program drops nothing"
    if out == sent:
        return PASS
    before, after = TCP(bytes(Ether(sent)[TCP])), Ether(out)
    tcp = after[TCP]
    assert len(out) == len(sent)
    kinds = [kind for kind, _ in tcp.options]
    assert KIND_MPTCP not in kinds and kinds.count("NOP") > 2, tcp.options
    kept = [o for o in before.options if o[0] != KIND_MPTCP]
    assert [o for o in tcp.options if o[0] != "NOP"] == [o for o in kept if o[0] != "NOP"]
    assert (tcp.seq, tcp.ack, tcp.window, tcp.flags) == (
        before.seq,
        before.ack,
        before.window,
        before.flags,
    )
    declared = tcp.chksum
    del tcp.chksum  # scapy computes it again from the bytes as they are now
    assert Ether(bytes(after))[TCP].chksum == declared, "checksum not fixed"
    return STRIP


@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
def test_a_data_ack_with_a_window_tcp_would_not_take_is_stripped(window_filter, v6):
    sub = Subflow(window_filter, v6)
    before = sub.stripped()
    assert sub.send(ack=5000, window=1000) == PASS  # the first: followed from here
    # Nothing new for TCP, a smaller window: TCP keeps 1000, MPTCP would add it to the
    # newer data ACK.
    assert sub.send(ack=5000, window=900, options=(dss(data_ack=99),)) == STRIP
    assert sub.send(ack=5000, window=999) == STRIP
    assert sub.stripped() == before + 2


def test_windows_tcp_takes_pass(window_filter):
    sub = Subflow(window_filter)
    assert sub.send(ack=5000, window=1000) == PASS
    assert sub.send(ack=5000, window=1000) == PASS  # the same window: the same edge
    assert sub.send(ack=5000, window=1200) == PASS  # larger: taken
    assert sub.send(ack=5000, window=1100) == STRIP  # below the 1200 now held
    assert sub.send(ack=5000, window=0) == PASS  # zero: taken
    assert sub.send(ack=5000, window=10) == PASS  # above the zero held
    assert sub.send(ack=6000, window=5) == PASS  # new subflow data acknowledged: taken
    assert sub.send(ack=6000, window=4) == STRIP
    assert sub.send(ack=6000, window=3, seq=1100) == PASS  # newer sequence: taken
    assert sub.send(ack=6000, window=2) == PASS  # an older sequence: not ours to judge
    assert sub.send(ack=5500, window=1) == PASS  # an old ACK: TCP ignores all of it


@pytest.mark.parametrize(
    "options",
    [
        (),  # no MPTCP option: plain TCP's business
        (dss(flags=0x05),),  # a data ACK with a mapping
        (dss(flags=0x11),),  # a DATA_FIN
        (dss(flags=0x04),),  # a mapping without a data ACK
        (dss(), add_addr()),  # a control option beside the data ACK
        ((KIND_MPTCP, bytes([0x20])),),  # a DSS too short to read: not understood
        (("NOP", None), dss()),  # the DSS at an odd offset: its checksum words straddle
    ],
    ids=["plain", "mapping", "data_fin", "no_data_ack", "add_addr", "short", "odd_offset"],
)
def test_only_a_bare_data_ack_is_ever_stripped(window_filter, options):
    sub = Subflow(window_filter)
    assert sub.send(ack=5000, window=1000) == PASS
    assert sub.send(ack=5000, window=900, options=options) == PASS
    assert sub.send(ack=5000, window=900) == STRIP  # the same, as a bare data ACK


def test_segments_with_data_or_flags_pass_and_a_handshake_starts_over(window_filter):
    sub = Subflow(window_filter)
    assert sub.send(ack=5000, window=1000) == PASS
    assert sub.send(ack=5000, window=900, payload=b"data") == PASS
    assert sub.send(ack=5000, window=900, flags="FA") == PASS  # the subflow ends: forgotten
    assert sub.send(ack=5000, window=800) == PASS  # followed again from here
    assert sub.send(ack=5000, window=700, flags="RA") == PASS
    assert sub.send(ack=5000, window=600) == PASS


def test_a_subflow_is_not_followed_before_its_first_bare_data_ack(window_filter):
    sub = Subflow(window_filter)
    assert sub.send(ack=5000, window=1000, options=()) == PASS
    assert sub.send(ack=5000, window=900, options=()) == PASS
    tracked = window_filter[0].counters()["tracked"]
    assert sub.send(ack=5000, window=800) == PASS
    assert window_filter[0].counters()["tracked"] == tracked + 1
    assert sub.send(ack=5000, window=700) == STRIP


def test_subflows_are_followed_apart(window_filter):
    one, two = Subflow(window_filter), Subflow(window_filter)
    assert one.send(ack=5000, window=1000) == PASS
    assert two.send(ack=5000, window=100) == PASS
    assert two.send(ack=5000, window=200) == PASS
    assert one.send(ack=5000, window=900) == STRIP
    assert two.send(ack=5000, window=150) == STRIP


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00" * 20,  # shorter than its headers
        bytes(Ether() / IP(src="10.9.0.2", dst="10.9.0.1", frag=3) / Raw(b"x" * 40)),
        bytes(Ether() / IP(src="10.9.0.2", dst="10.9.0.1", proto=6) / Raw(b"x" * 8)),
    ],
    ids=["runt", "fragment", "truncated_tcp"],
)
def test_what_it_cannot_read_passes(window_filter, frame):
    _, fd = window_filter
    assert bpf_syscall.test_run_frame(fd, frame) == (TC_ACT_OK, frame)


def test_a_missing_or_refused_object_is_named_and_leaves_nothing_pinned(tmp_path, monkeypatch):
    import hosts.stale_window as module
    from hosts.guard import BPFFS, GuardError

    name = f"unit-bogus-{os.getpid()}"
    monkeypatch.setattr(module, "OBJECT", tmp_path / "stale_window.o")
    with pytest.raises(
        GuardError, match="missing or older than its source: run 'sudo make install'"
    ):
        StaleWindowFilter(name)
    (tmp_path / "stale_window.o").write_bytes(b"not an ELF object")
    with pytest.raises(GuardError, match="bpftool"):
        StaleWindowFilter(name)
    assert not (BPFFS / name).exists()


@pytest.mark.parametrize(
    "options",
    [
        (dss(), ("SAck", (1000, 2000))),  # a duplicate ACK: its SACK block stays for TCP
        (dss(flags=0x03),),  # an 8-byte data ACK: a 12-byte DSS
        (dss(), (253, b"xx")),  # an option it does not know stays too
    ],
    ids=["sack", "data_ack64", "unknown"],
)
def test_the_dss_alone_goes_whatever_stands_beside_it(window_filter, options):
    sub = Subflow(window_filter)
    assert sub.send(ack=5000, window=1000) == PASS
    assert sub.send(ack=5000, window=900, options=options) == STRIP  # checked in outcome()
