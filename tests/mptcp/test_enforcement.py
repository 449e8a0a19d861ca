"""Enforcement against an eavesdropper on a's unprotected network, shape by shape.

The connection's first subflow uses a's unprotected address (the case the extension is
for), so m2, which taps a's legacy link, has read its keys, sequence numbers and
timestamps. It forges options in b's name in every shape of experiments/shapes.py. A
vanilla host (the kernel's path manager) acts on each shape: the positive control. An
enforcing host acts on none. The kernel's MIB counters at the victim are the oracle.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.harness import set_mode
from experiments.shapes import SHAPES
from tests.integration.tools import REPO, Capture, wait_until
from tests.mptcp.helpers import Transfer, managed_transfer, mib
from topologies.builder import Testbed
from topologies.dualhomed import (
    A_TRUSTED,
    A_UNTRUSTED,
    B_TRUSTED,
    B_UNTRUSTED,
    M2,
    DualHomedTopo,
)

UNUSED_ID = 9  # a forged RM_ADDR for an ID nobody uses: counted, harmless
ORACLE = {
    "rm_addr": "MPTcpExtRmAddr",
    "mp_prio": "MPTcpExtMPPrioRx",
    "fastclose": "MPTcpExtMPFastcloseRx",
    "add_addr": "MPTcpExtAddAddr",
}
# Shapes that leave the connection as it was, for the positive control on one connection.
GENTLE = [
    "plain",
    "ip_options",
    "tcp_nops",
    "behind_dss",
    "before_dss",
    "behind_unknown",
    "malformed_after",
    "psh",
    "urg",
    "fragments",
]


@pytest.fixture
def tb(tmp_path):
    with Testbed(DualHomedTopo(), log_dir=str(tmp_path / "tb")) as t:
        for src, dst in ((A_TRUSTED, B_TRUSTED), (A_UNTRUSTED, B_UNTRUSTED)):
            t.net["a"].cmd(f"ping -c1 -W2 -I {src} {dst}")
        t.net["b"].cmd(f"ping -c1 -W2 {A_TRUSTED}")
        t.net["m2"].cmd(f"ping -c1 -W2 {A_UNTRUSTED}")
        yield t


class Forger:
    """experiments.forger in m2, reading a's legacy link (IPv4 addresses unless told)."""

    def __init__(
        self,
        tb,
        tap: Path,
        victim: tuple[str, ...] = (A_TRUSTED, A_UNTRUSTED),
        peer: tuple[str, ...] = (B_TRUSTED, B_UNTRUSTED),
        attacker: str = M2,
    ):
        cmd = [
            sys.executable,
            "-m",
            "experiments.forger",
            "--tap",
            str(tap),
            "--attacker",
            attacker,
            "--removed-id",
            str(UNUSED_ID),
        ]
        for addr in victim:
            cmd += ["--victim", addr]
        for addr in peer:
            cmd += ["--peer", addr]
        self.tap = tap
        self.bulk_after = 0  # bytes the tap must hold before a lull counts
        self.proc = tb.net["m2"].popen(
            cmd,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready", self.proc.stderr.read()

    def expect_bulk(self) -> None:
        """The next lull must come after a bulk transfer starting now. 200 kB of headers
        (about 1,500 segments at the 128-byte snaplen) is far more than a handshake puts
        on the tap, and far less than the untrusted subflows carry even when the
        scheduler gives most of the bulk to the trusted one (760 kB seen, 1 s bulk)."""
        self.bulk_after = (self.tap.stat().st_size if self.tap.exists() else 0) + 200_000

    def __call__(self, attack: str, shape: str = "plain") -> dict:
        # A lull after the bulk, not the pause before it (a forgery racing the first
        # data was once not acted on): the tap holds the bulk, then nothing for 0.3 s.
        wait_until(
            lambda: self.tap.stat().st_size > self.bulk_after
            and time.time() - self.tap.stat().st_mtime > 0.3,
            30,
            "a lull on the tap after the bulk",
        )
        self.proc.stdin.write(f"{attack} {shape}\n")
        self.proc.stdin.flush()
        report = json.loads(self.proc.stdout.readline())
        assert "error" not in report and report["sent"] > 0, report
        return report

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def bulk_then_idle(tb, tap: Path, **kw) -> Transfer:
    """A transfer whose first subflow uses a's unprotected address: 2 s of bulk, then
    quiet (when an eavesdropper's copy of b's last segment is current)."""
    return Transfer(tb, seconds=2, idle=40, timeout=60, bind=A_UNTRUSTED, **kw)


def test_a_vanilla_host_acts_on_every_shape(tb, tmp_path):
    a, b = tb.net["a"], tb.net["b"]
    set_mode(tb, "vanilla")
    tap = tmp_path / "tap.pcap"
    cap = Capture(a, "a-eth1", "tcp", tap, snaplen=128)
    forger = Forger(tb, tap)
    forger.expect_bulk()
    xfer = bulk_then_idle(tb, tap, wait_subflows=3)
    wait_until(lambda: "10.4.0.20" in a.cmd("ss -Htn state established"), 15, "a full mesh")
    outcomes = {}
    for shape in GENTLE:
        before = mib(a, ORACLE["mp_prio"])
        forger("mp_prio", shape)
        wait_until(lambda: mib(a, ORACLE["mp_prio"]) > before, 5, f"a to act on {shape}")  # noqa: B023
        outcomes[shape] = "acted on"
    for shape in ("ip_options", "malformed_after"):
        before = mib(a, ORACLE["rm_addr"])
        forger("rm_addr", shape)
        wait_until(lambda: mib(a, ORACLE["rm_addr"]) > before, 5, f"RM_ADDR in {shape}")  # noqa: B023
    before = mib(b, "MPTcpExtMPJoinSynRx") - mib(b, "MPTcpExtMPJoinNoTokenFound")
    forger("join_flood")
    wait_until(
        lambda: mib(b, "MPTcpExtMPJoinSynRx") - mib(b, "MPTcpExtMPJoinNoTokenFound") > before,
        5,
        "b to take a forged join",
    )
    # Data without a data-level mapping makes Linux reset the subflow: a second
    # connection for the FIN and the RST (which ends the connection).
    for attack, shape in (
        ("mp_prio", "payload"),
        (None, None),
        ("mp_prio", "fin"),
        ("fastclose", "rst"),
    ):
        if attack is None:
            xfer.kill()
            forger.expect_bulk()
            xfer = bulk_then_idle(tb, tap, port=5202)
            wait_until(
                lambda: "10.4.0.20" in a.cmd("ss -Htn state established '( dport = :5202 )'"),
                15,
                "a full mesh",
            )
            continue
        before = mib(a, ORACLE[attack])
        forger(attack, shape)
        wait_until(lambda: mib(a, ORACLE[attack]) > before, 5, f"a to act on {attack} {shape}")  # noqa: B023
        outcomes[shape] = "acted on"
    print("vanilla:", outcomes)
    forger.close()
    xfer.kill()
    cap.stop(settle=0)


ADD_ADDR_FIELDS = (
    "frame.time_epoch",
    "ip.src",
    "tcp.srcport",
    "ip.dst",
    "tcp.dstport",
    "tcp.flags.str",
    "tcp.options.mptcp.echo",
    "tcp.options.mptcp.addrid",
    "tcp.options.mptcp.ipv4",
)


def announcements_to_a(pcap: Path) -> int:
    """Announcements (ADD_ADDR, not echoes) to a in ``pcap``."""
    r = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            "-Y",
            f"ip.dst == {A_TRUSTED} && tcp.options.mptcp.subtype == 3 && tcp.options.mptcp.echo == 0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return len(r.stdout.splitlines())


def add_addrs(*pcaps: Path) -> str:
    """Every ADD_ADDR (echoes included) in ``pcaps``, for a failure's message."""
    rows = []
    for pcap in pcaps:
        fields = [("-e", f) for f in ADD_ADDR_FIELDS]
        r = subprocess.run(
            ["tshark", "-r", str(pcap), "-Y", "tcp.options.mptcp.subtype == 3", "-T", "fields"]
            + [arg for pair in fields for arg in pair],
            capture_output=True,
            text=True,
            timeout=60,
        )
        rows += [f"{pcap.name}\t{line}" for line in r.stdout.splitlines()]
    return "\n".join(rows)


def test_an_enforcing_host_acts_on_no_shape(tb, tmp_path):
    a, b = tb.net["a"], tb.net["b"]
    tb.start_agents(extra=["--enforce"])
    tap = tmp_path / "tap.pcap"
    cap = Capture(a, "a-eth1", "tcp", tap, snaplen=128)
    trusted_cap = Capture(a, "a-eth0", "tcp", tmp_path / "trusted.pcap", snaplen=128)
    forger = Forger(tb, tap)
    forger.expect_bulk()
    xfer = managed_transfer(tb, seconds=1, idle=40, timeout=60, bind=A_UNTRUSTED)
    wait_until(lambda: len(tb.tpbt("a")["guarded"]) >= 2, 10, "a's untrusted subflows guarded")

    def events() -> dict:
        """Path-manager events no legitimate packet causes here ("announced" is checked by
        address below: b's kernel may retransmit its own announcement)."""
        reported = tb.tpbt("a")["kernel_events"]
        return {k: v for k, v in reported.items() if k in ("removed", "sub_priority")}

    strict = [name for attack, name in ORACLE.items() if attack != "add_addr"]
    before, events_before = {name: mib(a, name) for name in strict}, events()
    guard_before = tb.tpbt("a")["guard"]
    sent = 0
    for attack in ORACLE:
        for shape in SHAPES:
            sent += forger(attack, shape)["sent"]
    joins_before = mib(b, "MPTcpExtMPJoinSynRx") - mib(b, "MPTcpExtMPJoinNoTokenFound")
    flood = forger("join_flood")["sent"]

    def dropped() -> int:
        g = tb.tpbt("a")["guard"]
        return sum(
            g[k] - guard_before[k] for k in ("drop_control", "drop_malformed", "drop_fragment")
        )

    # At least one drop per shape, attack and guarded subflow (m2 sees two).
    expected_drops = len(ORACLE) * len(SHAPES) * 2
    wait_until(lambda: dropped() >= expected_drops, 10, f"{expected_drops} drops at a's guard")
    wait_until(
        lambda: tb.tpbt("b")["counters"]["join_refused_pair"]
        + tb.tpbt("b")["counters"]["join_refused_rate"]
        + tb.tpbt("b")["counters"]["join_refused_address"]
        >= flood,
        10,
        "b to refuse the join flood",
    )
    after = {name: mib(a, name) for name in strict}
    assert after == before, f"a acted on a forgery: {before} -> {after}"

    # ADD_ADDR: the AddAddr MIB also counts b's retransmissions of its own announcement
    # (Linux resends one after an RTT-based timeout when the echo is late), so the
    # oracle is the address of every announcement a's kernel took, which it reports to
    # the path manager; the counts must add up to the MIB (no report lost).
    def announced() -> dict:
        return tb.tpbt("a")["peer_announced"]

    wait_until(
        lambda: sum(announced().values()) == mib(a, "MPTcpExtAddAddr"),
        5,
        "a's agent to report every announcement a's kernel counted",
    )
    assert B_UNTRUSTED in announced()  # b's own announcement: the oracle sees them
    assert set(announced()) <= {B_TRUSTED, B_UNTRUSTED}, (
        f"a took a forged ADD_ADDR: {announced()}\n" + add_addrs(tap, trusted_cap.path)
    )
    # And a forgery naming b's own address: a's kernel took no more announcements than
    # came over the trusted link (captured before the kernel sees them).
    taken = announced()  # first: whatever comes later is captured before it is taken
    genuine = announcements_to_a(trusted_cap.path)
    assert sum(taken.values()) <= genuine, (
        f"a took {taken}, {genuine} came over the trusted link\n" + add_addrs(tap, trusted_cap.path)
    )
    assert events() == events_before  # nor did a's kernel report one to its path manager
    assert mib(b, "MPTcpExtMPJoinSynRx") - mib(b, "MPTcpExtMPJoinNoTokenFound") == joins_before
    print(
        f"enforce: {sent} forged option segments, {flood} joins; a's guard dropped "
        f"{dropped()}; b refused {tb.tpbt('b')['counters']}"
    )
    client, server = xfer.results()
    assert client["sha256"] == server["sha256"] and client["bytes"] == server["bytes"]
    forger.close()
    cap.stop(settle=0)
    trusted_cap.stop(settle=0)


def test_forged_trusted_add_addr_is_refused(tb, tmp_path):
    """A T-flagged ADD_ADDR for the attacker's address with an HMAC it cannot compute, on
    a connection whose first subflow is trusted (nothing is guarded): a's agent refuses
    it, a's kernel never sees it, no subflow goes to the attacker."""
    a = tb.net["a"]
    tb.start_agents()
    tap = tmp_path / "tap.pcap"
    cap = Capture(a, "a-eth1", "tcp", tap, snaplen=128)
    xfer = managed_transfer(tb, seconds=2, idle=8)
    wait_until(
        lambda: time.time() - tap.stat().st_mtime > 0.3 and tap.stat().st_size > 24, 20, "a lull"
    )
    # The tap holds tens of thousands of segments: read it the forger's way (raw headers).
    forge = (
        "import sys, time; from scapy.all import send\n"
        "from experiments.attacks import learn, read_tap, segment_after\n"
        "from hosts.options import AddAddr, encode\n"
        "k = learn(read_tap(sys.argv[1]), {'10.1.0.10', '10.2.0.10'}, {sys.argv[2]})\n"
        "(seen,) = k.last_from_peer.values()\n"
        "opt = encode(AddAddr(9, sys.argv[3], trust=True, hmac=b'\\0' * 8))\n"
        "send(segment_after(seen, opt, time.time()), verbose=False)\n"
    )
    before = mib(a, "MPTcpExtAddAddr")
    r = tb.net["m2"].popen(
        [sys.executable, "-c", forge, str(tap), B_TRUSTED, M2],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert r.wait(60) == 0, r.stderr.read()
    wait_until(lambda: tb.tpbt("a")["counters"]["add_addr_trust_bad_hmac"] >= 1, 5, "a refusal")
    assert mib(a, "MPTcpExtAddAddr") == before
    assert M2 not in a.cmd("ss -tn")
    client, server = xfer.results()
    assert client["sha256"] == server["sha256"]
    cap.stop(settle=0)
