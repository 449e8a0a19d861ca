"""The trust model under attack, on the dual-homed topology with real kernels and agents.

The attacker of the first three tests is m2 on a's legacy network, which has read the
connection's first subflow (a's unprotected address), so it knows the MP_CAPABLE keys
and can compute any HMAC of that connection. Where a forgery is only refused by where it
arrives, the positive control delivers the same bytes where they would be believed, as
a compromised switch on the trusted path could (OpenFlow packet-out at a's SAVI port).
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from experiments import attacks
from experiments.harness import Capture, HarnessError, Transfer, wait_until
from hosts.options import (
    AddAddr,
    AddrTrust,
    OptionError,
    add_addr_hmac,
    encode,
    mptcp_options,
    signed_addr_trust,
)
from hosts.segment import parse
from tests.integration.tools import REPO
from tests.mptcp.helpers import managed_transfer, pin_neighbours, table
from topologies.builder import Testbed
from topologies.dualhomed import (
    A_TRUSTED,
    A_UNTRUSTED,
    B_TRUSTED,
    B_UNTRUSTED,
    M1,
    DualHomedTopo,
)

A_PORT_ON_S1 = 1  # a-eth0's port on its SAVI switch


class ShortTrustTopo(DualHomedTopo):
    """The dual-homed scenario with an 8 s trust export, to watch trust expire. The agents'
    long poll brings a fresh document at least every 3 s (--ttl 6 / 2), so when the
    controller stops, the last one has more than 5 s to live."""

    def savi_config(self) -> dict:
        return {**super().savi_config(), "trust_ttl": 8}


@pytest.fixture
def tb(tmp_path):
    with Testbed(DualHomedTopo(), log_dir=str(tmp_path / "tb")) as t:
        warm(t)
        yield t


def warm(t) -> None:
    for src, dst in ((A_TRUSTED, B_TRUSTED), (A_UNTRUSTED, B_UNTRUSTED)):
        t.net["a"].cmd(f"ping -c1 -W2 -I {src} {dst}")
    t.net["b"].cmd(f"ping -c1 -W2 {A_TRUSTED}")
    for m in ("m1", "m2"):
        t.net[m].cmd(f"ping -c1 -W2 {B_TRUSTED}")


def keys_from_tap(tap: Path) -> attacks.Knowledge:
    """What m2's tap of a's legacy link taught it (the first subflow's keys)."""
    k = attacks.learn(
        attacks.read_tap(str(tap)), {A_TRUSTED, A_UNTRUSTED}, {B_TRUSTED, B_UNTRUSTED}
    )
    assert k.client_key is not None, "the tap did not see the MP_CAPABLE keys"
    return k


def subflow_port(host, local: str, remote: str) -> int:
    out = host.cmd(f"ss -Htn state established src {local} dst {remote}:5201")
    return int(out.split()[2].rsplit(":", 1)[1])


def send_from(host, iface: str, dst_mac: str, packet, tmp_path: Path) -> None:
    """``packet`` (scapy IP) onto ``host``'s ``iface`` towards ``dst_mac``."""
    pcap = tmp_path / f"forged-{time.monotonic_ns()}.pcap"
    wrpcap(str(pcap), [Ether(src=host.intf(iface).MAC(), dst=dst_mac) / packet])
    code = (
        "import sys; from scapy.all import rdpcap, sendp\n"
        "sendp(rdpcap(sys.argv[1]), iface=sys.argv[2], verbose=False)\n"
    )
    r = host.popen(
        [sys.executable, "-c", code, str(pcap), iface], cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    assert r.wait(60) == 0, r.stderr.read()


def from_b_with_addr_trust(frame: bytes) -> bool:
    try:
        seg = parse(frame[14:])
        return seg.src == B_TRUSTED and any(
            isinstance(o, AddrTrust) for o in mptcp_options(seg.options)
        )
    except OptionError:
        return False


def packet_out(tb, switch: str, port: int, frame: bytes) -> None:
    """A frame sent by the switch itself out of ``port`` (what a compromised switch,
    or one on-path box of the trusted path, could do)."""
    r = subprocess.run(
        [
            "ovs-ofctl",
            "-O",
            "OpenFlow13",
            "packet-out",
            switch,
            "CONTROLLER",
            f"output:{port}",
            frame.hex(),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 0, r.stderr


def test_the_attacker_hosts_have_no_way_to_the_management_api(tb):
    tb.start_agents()
    url = f"{tb.mgmt_url}/savi/trust"
    for m in ("m1", "m2"):
        host = tb.net[m]
        assert f"{m}-mgmt" not in host.cmd("ip -o link")
        assert host.cmd(f"curl -s -o /dev/null -w '%{{http_code}}' -m 2 {url}").strip() == "000"
    code = tb.net["a"].cmd(f"curl -s -o /dev/null -w '%{{http_code}}' -m 5 {url}").strip()
    assert code == "200"  # the agent hosts read it


def test_a_forged_withdrawal_on_the_legacy_interface_is_not_believed(tb, tmp_path):
    """m2 knows the keys, so it signs a perfect withdrawal of b's protected address, as
    if on the trusted subflow b_T -> a_T, and puts it on a's legacy interface (a would
    otherwise take it: its hosts route by source and run with rp_filter=0). a drops it in
    the kernel, before netfilter could copy it for the agent; a's TPBT still trusts b_T.

    Delivered on a's protected port instead (as a box on the trusted path could), the
    same bytes are still refused: their sequence number is a guess, outside the subflow's
    window. With the sequence number that box would read on the path, they are believed:
    the forgery was right, and only where it arrived and what it knew made the
    difference."""
    a, m2 = tb.net["a"], tb.net["m2"]
    tap_path, path_path = tmp_path / "tap.pcap", tmp_path / "trusted-path.pcap"
    tap = Capture(a, "a-eth1", "tcp", tap_path, snaplen=128)
    on_path = Capture(a, "a-eth0", f"tcp and src host {B_TRUSTED}", path_path, snaplen=128)
    tb.start_agents()
    xfer = managed_transfer(tb, seconds=2, idle=30, timeout=60, bind=A_UNTRUSTED)
    wait_until(
        lambda: table(tb, "a").get((A_TRUSTED, B_TRUSTED)) == (True, True),
        10,
        "a to trust the subflow to b's protected address",
    )
    wait_until(lambda: time.time() - tap_path.stat().st_mtime > 0.3, 20, "a lull")
    k = keys_from_tap(tap_path)
    lport = subflow_port(a, A_TRUSTED, B_TRUSTED)
    unsigned = AddrTrust(1, counter=2**31, lifetime=0, hmac=b"", withdraw=True)
    forged = signed_addr_trust(
        k.server_key, k.client_key, unsigned, B_TRUSTED, B_TRUSTED, A_TRUSTED
    )  # b is the server: its key signs
    option = encode(forged)
    packet = IP(src=B_TRUSTED, dst=A_TRUSTED, id=attacks.TAG) / TCP(
        sport=5201,
        dport=lport,
        flags="A",
        seq=1,
        ack=1,
        options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 1)), (option[0], option[2:])],
    )
    state = tb.tpbt("a")
    guard, stats = state["guard"], state["stats"]
    send_from(m2, "m2-eth0", a.intf("a-eth1").MAC(), packet, tmp_path)
    wait_until(
        lambda: tb.tpbt("a")["guard"]["drop_wrong_iface"] > guard["drop_wrong_iface"],
        5,
        "a's classifier to drop it",
    )
    # Dropped before netfilter: the agent never gets a copy (nothing to ignore).
    assert tb.tpbt("a")["stats"]["wrong_interface"] == stats["wrong_interface"]
    after = tb.tpbt("a")["counters"]
    for counter in ("addr_trust_bad_hmac", "addr_trust_replayed", "withdrawal_untrusted"):
        assert after[counter] == state["counters"][counter], counter  # never reached the core
    assert table(tb, "a").get((A_TRUSTED, B_TRUSTED)) == (True, True)
    # On the trusted path, with a guessed sequence number: outside the window. A fixed
    # guess (seq 1) lands in the 16-MB window for about one connection in 250, when b's
    # initial sequence number happens to lie just below it (seen in CI): the guess is
    # made half the sequence space away from what b last sent, a guess that misses.
    tag = attacks.TAG.to_bytes(2, "big")

    def last_from_b():
        frames = [f for f, _ in attacks.read_tap(str(path_path)) if f[18:20] != tag]  # not ours
        return [seg for seg in map(lambda f: parse(f[14:]), frames) if seg.dport == lport][-1]

    packet[TCP].seq = (last_from_b().seq + 2**31) % 2**32
    del packet[TCP].chksum
    frame = bytes(Ether(src="00:00:00:00:0b:01", dst=a.intf("a-eth0").MAC()) / packet)
    before = tb.tpbt("a")["stats"]["out_of_window"]
    for _ in range(3):  # as an attacker would, send again if it left no trace
        packet_out(tb, "s1", A_PORT_ON_S1, frame)
        try:
            wait_until(
                lambda: tb.tpbt("a")["stats"]["out_of_window"] > before,
                3,
                "a to refuse it outside the window",
            )
            break
        except HarnessError:
            continue
    assert tb.tpbt("a")["stats"]["out_of_window"] > before
    assert table(tb, "a").get((A_TRUSTED, B_TRUSTED)) == (True, True)
    # With the sequence number b last used on that subflow, as read on the path.
    on_path.stop(settle=0)
    seen = last_from_b()
    packet[TCP].seq = (seen.seq + seen.payload_len) % 2**32
    del packet[TCP].chksum
    frame = bytes(Ether(src="00:00:00:00:0b:01", dst=a.intf("a-eth0").MAC()) / packet)
    packet_out(tb, "s1", A_PORT_ON_S1, frame)
    wait_until(
        lambda: table(tb, "a").get((A_TRUSTED, B_TRUSTED), (0, 0))[1] is False,
        5,
        "a to believe the withdrawal on the trusted path",
    )
    xfer.kill()
    tap.stop(settle=0)


def test_a_replayed_notification_does_not_bring_trust_back(tb, tmp_path):
    """b's binding goes; a's trust in b_T ends with the lifetime of b's last notification.
    Even replayed on the trusted path itself, b's recorded notifications are refused
    (their counters are used) and a's TPBT stays as it is."""
    a = tb.net["a"]
    rec_path = tmp_path / "trusted.pcap"
    rec = Capture(a, "a-eth0", "tcp", rec_path, snaplen=128)
    tb.start_agents()
    xfer = managed_transfer(tb, seconds=2, idle=30, timeout=60)
    wait_until(
        lambda: table(tb, "a").get((A_TRUSTED, B_TRUSTED)) == (True, True), 10, "a to trust b_T"
    )
    pin_neighbours(tb, "b", B_TRUSTED, "10.3.0.1")
    assert tb.request("DELETE", "/savi/bindings", {"ip": B_TRUSTED})[0] == 200
    wait_until(
        lambda: table(tb, "a").get((A_TRUSTED, B_TRUSTED), (0, 0))[1] is False,
        10,
        "a's trust in b_T to end with its lifetime",
    )
    rec.stop(settle=0)
    notes = [frame for frame, _ in attacks.read_tap(str(rec_path)) if from_b_with_addr_trust(frame)]
    assert notes, "no ADDR_TRUST from b was recorded"
    before = tb.tpbt("a")["counters"]["addr_trust_replayed"]
    for frame in notes:
        packet_out(tb, "s1", A_PORT_ON_S1, frame)
    wait_until(
        lambda: tb.tpbt("a")["counters"]["addr_trust_replayed"] >= before + len(notes),
        5,
        "a to refuse the replays",
    )
    assert table(tb, "a").get((A_TRUSTED, B_TRUSTED), (0, 0))[1] is False
    xfer.kill()


def test_a_peer_cannot_bend_trust_on_another_connection(tb, tmp_path):
    """m1 opens its own MPTCP connection to b (it knows its own keys) and, on it, claims
    a's protected address with a valid T-flagged ADD_ADDR and withdraws "ID 1". b's trust
    on a's connection does not move; nothing on m1's connection names a's address as
    trusted."""
    m1 = tb.net["m1"]
    tb.start_agents()
    xfer = managed_transfer(tb, seconds=2, idle=30, timeout=60)
    wait_until(
        lambda: table(tb, "b").get((B_TRUSTED, A_TRUSTED)) == (True, True),
        10,
        "b to trust a's protected address",
    )
    tap_path = tmp_path / "m1.pcap"
    tap = Capture(m1, "m1-eth0", "tcp", tap_path, snaplen=128)
    own = Transfer(tb, seconds=1, idle=30, timeout=60, client="m1", server="b", port=5202)
    wait_until(
        lambda: time.time() - tap_path.stat().st_mtime > 0.5 and tap_path.stat().st_size > 1000,
        20,
        "m1's connection to go quiet",
    )
    k = attacks.learn(attacks.read_tap(str(tap_path)), {B_TRUSTED}, {M1})  # m1 -> b segments
    assert k.client_key is not None and k.last_from_peer
    claim = encode(
        AddAddr(
            5,
            A_TRUSTED,
            trust=True,
            hmac=add_addr_hmac(k.client_key, k.server_key, 5, A_TRUSTED, trust=True),
        )
    )
    withdraw = encode(
        signed_addr_trust(
            k.client_key,
            k.server_key,
            AddrTrust(1, 2**31, 0, b"", withdraw=True),
            A_TRUSTED,
            M1,
            B_TRUSTED,
        )
    )
    seen = next(iter(k.last_from_peer.values()))
    before = tb.tpbt("b")
    for option in (claim, withdraw):
        send_from(
            m1,
            "m1-eth0",
            seen[Ether].dst,
            attacks.segment_after(seen, option, time.time()),
            tmp_path,
        )
    wait_until(
        lambda: tb.tpbt("b")["counters"]["add_addr_trust_accepted"]
        > before["counters"]["add_addr_trust_accepted"],
        5,
        "b to verify m1's claim on m1's own connection",
    )
    after = tb.tpbt("b")
    a_conn = [e for e in after["entries"] if e["dst"] == A_TRUSTED]
    assert any(e["sip_trust"] and e["dip_trust"] for e in a_conn)  # a's connection: unchanged
    m1_conn = [e for e in after["entries"] if e["dst"] == M1]
    assert m1_conn and not any(e["dip_trust"] for e in m1_conn)
    assert not any(
        e["dst"] == A_TRUSTED and e["token"] in {r["token"] for r in m1_conn} and e["dip_trust"]
        for e in after["entries"]
    )
    own.kill()
    xfer.kill()
    tap.stop(settle=0)


def test_the_controller_away_for_less_than_the_lifetime_changes_nothing(tmp_path):
    with Testbed(ShortTrustTopo(), log_dir=str(tmp_path / "tb")) as t:
        warm(t)
        t.start_agents()
        wait_until(lambda: A_TRUSTED in t.tpbt("a")["local_trusted"], 10, "a's own trust")
        t.stop_controller()
        t0 = time.monotonic()
        # Well within the lifetime (more than 5 s left): still trusted, no flapping.
        while time.monotonic() - t0 < 2:
            assert A_TRUSTED in t.tpbt("a")["local_trusted"]
            time.sleep(0.2)
        # Beyond it: trust expires; the agents keep running and say why.
        wait_until(lambda: not t.tpbt("a")["local_trusted"], 12, "a's trust to expire")
        assert all(p.poll() is None for p in t.agents.values())
        assert t.tpbt("a")["stats"]["trust_unavailable"] >= 1
        t.start_controller()
        wait_until(
            lambda: A_TRUSTED in t.tpbt("a")["local_trusted"],
            15,
            "a's trust after the controller is back",
        )
        assert t.tpbt("a")["stats"]["trust_rejected"] == 0  # its seq went on growing
