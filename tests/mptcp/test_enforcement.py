"""Enforcement mode: a forged RM_ADDR on the untrusted path is dropped; vanilla accepts it.

The forger is an eavesdropper on the unprotected access network (m2): it copies the
sequence numbers of the last segment b sent to a's untrusted address and sends, in b's
name, a pure ACK with RM_ADDR for b's untrusted address. The kernel's RmAddr counter at
a is the oracle of what a accepted.
"""

import subprocess
import sys
import time

import pytest

from tests.integration.tools import REPO, Capture, wait_until
from tests.mptcp.helpers import Transfer, managed_transfer, mib
from topologies.builder import Testbed
from topologies.dualhomed import A_TRUSTED, A_UNTRUSTED, B_TRUSTED, B_UNTRUSTED, DualHomedTopo

FORGE = """
import sys, time
from scapy.all import Ether, conf, rdpcap
from experiments.attacks import segment_after
from hosts.options import AddAddr, RemoveAddr, encode
sock = conf.L2socket(iface=sys.argv[5])
print("ready", flush=True)
pcap = sys.stdin.readline().strip()  # the eavesdropped segment, as soon as it is there
seen = rdpcap(pcap)[-1]
if sys.argv[2] == "add_addr":  # T-flagged, the attacker's address, an HMAC it cannot know
    option = encode(AddAddr(9, "10.2.0.66", trust=True, hmac=b"\\x00" * 8))
else:
    option = encode(RemoveAddr((int(sys.argv[2]),)))
sock.send(Ether(dst=sys.argv[3], src=sys.argv[4]) / segment_after(seen, option, time.time()))
print("sent", flush=True)
"""


@pytest.fixture
def tb(tmp_path):
    with Testbed(DualHomedTopo(), log_dir=str(tmp_path / "tb")) as t:
        for src, dst in ((A_TRUSTED, B_TRUSTED), (A_UNTRUSTED, B_UNTRUSTED)):
            t.net["a"].cmd(f"ping -c1 -W2 -I {src} {dst}")
        t.net["b"].cmd(f"ping -c1 -W2 {A_TRUSTED}")
        yield t


def eavesdrop(tb, tmp_path) -> Capture:
    """What m2 would see on the unprotected network: b's segments to a's untrusted address."""
    return Capture(tb.net["a"], "a-eth1",
                   f"src host {B_TRUSTED} and dst host {A_UNTRUSTED} and tcp src port 5201",
                   tmp_path / "seen.pcap")  # fmt: skip


def forge(tb, seen: Capture, what: str) -> None:
    """Once the transfer has gone quiet, forge from the last segment seen, send from m2."""
    a, m2 = tb.net["a"], tb.net["m2"]
    seen.stop()
    forger = m2.popen([sys.executable, "-c", FORGE, str(seen.path), what,
                       a.intf("a-eth1").MAC(), m2.intf("m2-eth0").MAC(), "m2-eth0"], cwd=REPO,
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      text=True)  # fmt: skip
    assert forger.stdout.readline().strip() == "ready", forger.stderr.read()
    out, err = forger.communicate(f"{seen.path}\n", timeout=60)
    assert forger.returncode == 0 and "sent" in out, err


def test_vanilla_accepts_the_forged_rm_addr(tb, tmp_path):
    a, b = tb.net["a"], tb.net["b"]
    for h in (a, b):
        h.cmd("ip mptcp limits set subflows 4 add_addr_accepted 4")
    b.cmd(f"ip mptcp endpoint add {B_UNTRUSTED} dev b-eth1 id 2 signal")
    a.cmd(f"ip mptcp endpoint add {A_UNTRUSTED} dev a-eth1 subflow")
    seen = eavesdrop(tb, tmp_path)
    xfer = Transfer(tb, seconds=3, idle=6)
    wait_until(lambda: "10.2.0.10" in a.cmd("ss -tn state established"), 10, "a's 2nd subflow")
    time.sleep(4)  # into the quiet part
    before = mib(a, "MPTcpExtRmAddr")
    forge(tb, seen, "2")  # RM_ADDR for b's address ID 2
    wait_until(lambda: mib(a, "MPTcpExtRmAddr") > before, 5, "a to accept the RM_ADDR")
    xfer.results()


def test_enforcement_drops_the_forged_rm_addr(tb, tmp_path):
    a = tb.net["a"]
    tb.start_agents(extra=["--enforce"])
    seen = eavesdrop(tb, tmp_path)
    xfer = managed_transfer(tb, seconds=4, idle=6)
    time.sleep(4.5)  # into the quiet part
    before = mib(a, "MPTcpExtRmAddr")
    forge(tb, seen, "2")  # RM_ADDR: b's agent gave its untrusted address ID 2
    wait_until(lambda: tb.tpbt("a")["counters"]["enforced_drops"] >= 1, 5, "a drop")
    assert mib(a, "MPTcpExtRmAddr") == before
    client, server = xfer.results()
    assert client["sha256"] == server["sha256"]


def test_forged_trusted_add_addr_is_refused(tb, tmp_path):
    """A T-flagged ADD_ADDR for the attacker's address with an HMAC it cannot compute:
    a's agent drops it, a's kernel never sees it, no subflow goes to the attacker."""
    a = tb.net["a"]
    tb.start_agents()
    seen = eavesdrop(tb, tmp_path)
    xfer = managed_transfer(tb, seconds=4, idle=6)
    time.sleep(4.5)
    before = mib(a, "MPTcpExtAddAddr")
    forge(tb, seen, "add_addr")
    wait_until(lambda: tb.tpbt("a")["counters"]["add_addr_trust_bad_hmac"] >= 1, 5, "a refusal")
    assert mib(a, "MPTcpExtAddAddr") == before
    assert "10.2.0.66" not in a.cmd("ss -tn")
    client, server = xfer.results()
    assert client["sha256"] == server["sha256"]
