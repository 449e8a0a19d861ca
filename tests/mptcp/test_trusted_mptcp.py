"""Trusted MPTCP on the dual-homed topology, with the SAVI controller and real kernels."""

import json
import subprocess
import sys
import time

import pytest

from tests.integration.tools import REPO, Capture, wait_until
from tests.mptcp.helpers import (
    EXPECTED,
    Transfer,
    managed_transfer,
    mib,
    table,
    wait_for_table,
)
from topologies.builder import Testbed
from topologies.dualhomed import A_TRUSTED, A_UNTRUSTED, B_TRUSTED, B_UNTRUSTED, DualHomedTopo


@pytest.fixture
def tb(tmp_path):
    with Testbed(DualHomedTopo(), log_dir=str(tmp_path / "tb")) as t:
        for src, dst in ((A_TRUSTED, B_TRUSTED), (A_UNTRUSTED, B_UNTRUSTED)):
            t.net["a"].cmd(f"ping -c1 -W2 -I {src} {dst}")  # bindings and ARP in place
        t.net["b"].cmd(f"ping -c1 -W2 {A_TRUSTED}")
        yield t


def test_tpbt_is_table_1_and_the_transfer_is_intact(tb):
    tb.start_agents()
    xfer = managed_transfer(tb, seconds=10)
    wait_for_table(tb, "b", EXPECTED["b"])
    # The command researchers use, in both forms, while the connection is live.
    state = str(tb.state_file("a"))
    out = subprocess.run([sys.executable, "-m", "hosts.tpbt_show", "--state", state], cwd=REPO,
                         capture_output=True, text=True, timeout=30).stdout  # fmt: skip
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["SubFlow", "SipTrust", "DipTrust", "Lifetime", "Other"], out
    (row,) = [r for r in rows if r[0] == f"Sf({A_TRUSTED},{B_TRUSTED})"]
    assert row[1:3] == ["True", "True"] and 0 <= int(row[3]) <= 6 and row[4] == "/"
    js = json.loads(subprocess.run([sys.executable, "-m", "hosts.tpbt_show", "--state", state,
                                    "--json"], cwd=REPO, capture_output=True, text=True,
                                   timeout=30).stdout)  # fmt: skip
    assert len(js["entries"]) == 4
    client, server = xfer.results()
    assert server["bytes"] == client["bytes"] > 0
    assert server["sha256"] == client["sha256"]
    assert mib(tb.net["b"], "MPTcpExtMPJoinAckRx") == 3  # a full mesh of 4 subflows


def control_packets(pcap) -> list[tuple[str, str, str]]:
    """(source, destination, subtypes) of every packet with an MPTCP option other than
    DSS, MP_CAPABLE and MP_JOIN, decoded by tshark."""
    r = subprocess.run(["tshark", "-r", str(pcap), "-Y", "tcp.options.mptcp.subtype",
                        "-T", "fields", "-e", "ip.src", "-e", "ip.dst",
                        "-e", "tcp.options.mptcp.subtype"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    out = []
    for line in r.stdout.splitlines():
        src, dst, subtypes = line.split("\t")
        control = sorted({s for s in subtypes.split(",") if s not in ("0", "1", "2")})
        if control:
            out.append((src, dst, ",".join(control)))
    return out


def test_control_options_travel_on_the_trusted_subflow(tb, tmp_path):
    caps = [Capture(tb.net[h], f"{h}-eth{i}", "tcp port 5201", tmp_path / f"{h}{i}.pcap")
            for h in ("a", "b") for i in (0, 1)]  # fmt: skip
    tb.start_agents()
    xfer = managed_transfer(tb, seconds=8)
    client, server = xfer.results()
    time.sleep(0.5)
    for c in caps:
        c.stop()
    assert server["sha256"] == client["sha256"]
    seen = [p for c in caps for p in control_packets(c.path)]
    assert any("3" in s for _, _, s in seen), seen  # ADD_ADDR and echoes were sent
    assert any("9" in s for _, _, s in seen), seen  # and ADDR_TRUST
    trusted_pairs = {(A_TRUSTED, B_TRUSTED), (B_TRUSTED, A_TRUSTED)}
    off = [p for p in seen if (p[0], p[1]) not in trusted_pairs]
    assert off == [], f"control options on untrusted subflows: {off}"


def test_untrusted_first_subflow_is_reordered_behind_a_trusted_one(tb, tmp_path):
    tb.start_agents()
    # The application binds its connection to a's untrusted address.
    xfer = managed_transfer(tb, seconds=10, bind=A_UNTRUSTED)
    state = wait_until(lambda: tb.tpbt("a")["counters"]["reordered"] >= 1 and tb.tpbt("a"), 10,
                       "the untrusted first subflow to be re-created")  # fmt: skip
    assert state["counters"]["reordered"] >= 1
    client, server = xfer.results()
    assert server["sha256"] == client["sha256"] and server["bytes"] == client["bytes"]


def test_trusted_add_addr_is_accepted_by_the_receiving_kernel(tb):
    """a's first subflow uses its untrusted address, so a announces its trusted one: with
    T and the extension's HMAC, which b's agent verifies and hands to b's kernel."""
    tb.start_agents()
    before = mib(tb.net["b"], "MPTcpExtAddAddr")
    xfer = managed_transfer(tb, seconds=8, bind=A_UNTRUSTED)
    wait_until(lambda: tb.tpbt("b")["counters"]["add_addr_trust_accepted"] >= 1, 10,
               "b's agent to accept a T-flagged ADD_ADDR")  # fmt: skip
    wait_until(lambda: mib(tb.net["b"], "MPTcpExtAddAddr") > before, 10, "b's kernel AddAddr")
    wait_until(lambda: mib(tb.net["a"], "MPTcpExtEchoAdd") >= 1, 10, "the echo at a")
    assert tb.tpbt("a")["counters"]["add_addr_trust_sent"] >= 1
    assert tb.tpbt("b")["counters"]["add_addr_trust_bad_hmac"] == 0
    client, server = xfer.results()
    assert server["sha256"] == client["sha256"]


def test_host_without_the_agent_interoperates(tb):
    tb.start_agents(hosts=["a"])  # b is vanilla: in-kernel path manager, no extension
    xfer = Transfer(tb, seconds=4)
    wait_until(lambda: mib(tb.net["b"], "MPTcpExtAddAddr") >= 1, 8, "a's ADD_ADDR at b")
    state = wait_until(lambda: tb.tpbt("a")["entries"] and tb.tpbt("a"), 5, "a's TPBT rows")
    client, server = xfer.results()
    assert server["sha256"] == client["sha256"] and server["bytes"] == client["bytes"]
    assert state["counters"]["add_addr_trust_sent"] == 0  # b never showed it speaks it
    assert state["entries"] and all(not e["dip_trust"] for e in state["entries"])


def test_extension_off_is_vanilla_mptcp(tb):
    xfer = Transfer(tb, nbytes=30_000_000)
    client, server = xfer.results()
    assert server["sha256"] == client["sha256"]
    for h in ("a", "b"):
        assert "tmptcp" not in tb.net[h].cmd("nft list tables")


def test_binding_removal_reaches_both_tpbts(tb):
    tb.start_agents()
    xfer = managed_transfer(tb, seconds=20)
    wait_for_table(tb, "b", EXPECTED["b"])
    t0 = time.monotonic()
    assert tb.request("DELETE", "/savi/bindings", {"ip": A_TRUSTED})[0] == 200
    wait_until(lambda: table(tb, "a").get((A_TRUSTED, B_TRUSTED)) == (False, True), 5,
               "a's TPBT to drop its own trust")  # fmt: skip
    own = time.monotonic() - t0
    # Well before the 6 s lifetime of a's last notification: a's withdrawal (ADDR_TRUST
    # with W, sent from a's other address) reached b.
    wait_until(lambda: table(tb, "b").get((B_TRUSTED, A_TRUSTED), (True, True))[1] is False,
               3, "b's TPBT to drop a's trust")  # fmt: skip
    peer = time.monotonic() - t0
    print(f"binding removed -> own TPBT {own:.2f} s, peer TPBT {peer:.2f} s")
    xfer.client.kill()
    xfer.server.kill()


def test_agent_restart(tb):
    tb.start_agents()
    xfer = managed_transfer(tb, seconds=8)
    for h in ("a", "b"):
        tb.agents[h].kill()  # dies without cleaning up
        tb.agents.pop(h).wait(10)
    client, server = xfer.results()  # the connection goes on as plain MPTCP
    assert server["sha256"] == client["sha256"] and server["bytes"] == client["bytes"]
    old = Transfer(tb, seconds=30, port=5202)  # open before restart
    time.sleep(1)
    tb.start_agents()
    log = (tb.dir / "a-agent.log").read_text()
    assert "existed before this agent started" in log
    new = managed_transfer(tb, seconds=8, port=5203)
    client, server = new.results()
    assert server["sha256"] == client["sha256"]
    old.client.kill()
    old.server.kill()
    old.client.wait(10)
    old.server.wait(10)
