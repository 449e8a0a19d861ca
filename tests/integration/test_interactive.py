"""The ways in by hand: ``python -m topologies NAME`` (the testbed with Mininet's CLI and
the testbed's commands, driven here by a script) and ``mn --custom`` (which either gets
the SAVI controller or stops at once, building nothing)."""

import os
import re
import subprocess
import sys

import pytest

from tests.integration.tools import REPO, wait_until
from topologies.builder import MachineLock, Testbed, free_port
from topologies.mn import listening
from topologies.single import SingleSwitchTopo

MN = "/usr/bin/mn"


def machine_state() -> tuple[list[str], list[str]]:
    """Bridges and network namespaces: what a run could leave behind."""
    bridges = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return sorted(bridges.split()), sorted(re.findall(r"^\d+: (\S+?)[@:]", links, re.M))


def assert_lock_free() -> None:
    lock = MachineLock()
    lock.acquire("test: is the machine free?")
    lock.release()


def cli(tmp_path, args: list[str], commands: list[str]) -> str:
    script = tmp_path / "commands"
    script.write_text("\n".join(commands) + "\n")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "topologies",
            *args,
            "--script",
            str(script),
            "--log-dir",
            str(tmp_path / "tb"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr  # Mininet's own commands print through its logger


def test_the_cli_on_the_single_switch(tmp_path):
    before = machine_state()
    out = cli(
        tmp_path,
        ["savi_single", "--hosts", "3"],
        ["bindings", "spoof h1 10.0.0.2 10.0.0.3 4", "drops", "transfer h1 h2 1", "tpbt"],
    )
    for host in (1, 2, 3):  # the warm-up's pings bound every host's address
        assert re.search(
            rf"^1\s+{host}\s+10\.0\.0\.{host}\s+00:00:00:00:00:0{host}\s+fcfs\s+bound", out, re.M
        ), out
    sent = re.search(r"sent 4 from h1 as 10\.0\.0\.2; dpid 1 port 1 dropped (\d+)", out)
    assert sent and int(sent.group(1)) >= 4, out
    assert re.search(r"^1\s+1\s+[1-9]\d*\s", out, re.M), out  # drops shows h1's port
    assert re.search(r"h1 -> h2: \d+ bytes in 1 s .* digests equal", out), out
    assert "no agent runs in this topology" in out
    assert machine_state() == before  # everything it started is gone
    assert_lock_free()


def test_the_cli_on_the_dual_stack_dualhomed_topology(tmp_path):
    """``dualhomed --ipv6`` with enforcing agents: an IPv6 transfer whose TPBT is the
    draft's Table 1 in IPv6 addresses; the IPv6 bindings (a's protected one a DHCPv6
    lease) are in the binding table; an IPv6 attack trial fails."""
    before = machine_state()
    out = cli(
        tmp_path,
        ["dualhomed", "--ipv6", "--mode", "enforce"],
        ["bindings", "transfer -6 a b 2", "attack -6 rm_addr adaptive"],
    )
    assert re.search(r"a -> b: \d+ bytes in 2 s .* digests equal", out), out
    assert re.search(r"^1\s+1\s+2001:db8:1::10\s+00:00:00:00:0a:01\s+dhcp\s+bound", out, re.M), out
    assert re.search(r"Sf\(2001:db8:1::10,2001:db8:3::20\)\s+True\s+True", out), out
    assert re.search(r"Sf\(2001:db8:2::10,2001:db8:4::20\)\s+False\s+False", out), out
    assert "savi/enforce/unprotected/rm_addr/adaptive/v6: the attack failed" in out, out
    assert machine_state() == before


def test_the_cli_on_a_campus(tmp_path):
    """A campus of 3 access switches, 2 of them SAVI: its multi-homed host's transfer to
    the server, its TPBT during it; the attacker on a SAVI switch is dropped there."""
    before = machine_state()
    args = [
        "campus",
        "--switches",
        "3",
        "--savi-fraction",
        "0.67",
        "--per-switch",
        "1",
        "--attackers",
        "1",
        "--placement",
        "savi",
    ]
    out = cli(
        tmp_path, args, ["bindings", "transfer h2s1 srv 1", "spoof m1 10.200.0.10 10.1.0.11 3"]
    )
    assert re.search(r"h2s1 -> srv: \d+ bytes in 1 s .* digests equal", out), out
    assert "h2s1's TPBT during the transfer:" in out, out
    sent = re.search(r"sent 3 from m1 as 10\.200\.0\.10; dpid \d+ port 151 dropped (\d+)", out)
    assert sent and int(sent.group(1)) >= 3, out
    assert machine_state() == before
    assert_lock_free()


def test_the_cli_on_the_default_topology_with_enforcing_hosts(tmp_path):
    before = machine_state()
    out = cli(
        tmp_path,
        ["dualhomed", "--mode", "enforce"],
        ["transfer a b 1", "tpbt a", "trust", "attack rm_addr", "attack bogus", "a ping -c1 b"],
    )
    assert re.search(r"a -> b: \d+ bytes in 1 s .* digests equal", out), out
    # Table 1, as the agents wrote it while the transfer ran (it is gone once it ends).
    during = out.split("a's TPBT during the transfer:")[1]
    assert re.search(r"Sf\(10\.1\.0\.10,10\.3\.0\.20\)\s+True\s+True", during), out
    assert re.search(r"Sf\(10\.2\.0\.10,10\.4\.0\.20\)\s+False\s+False", during), out
    assert "a (local trusted: 10.1.0.10)" in out  # the tpbt command
    assert re.search(r"^10\.1\.0\.10\s+1\s+1\s+fcfs", out, re.M), out  # a's, exported
    assert "savi/enforce/unprotected/rm_addr/eavesdrop: the attack failed" in out, out
    assert "usage: attack [-6] ATTACK" in out  # a bad command is explained, the CLI goes on
    assert "1 received" in out  # Mininet's own commands work
    assert machine_state() == before
    assert_lock_free()


def test_the_cli_refuses_bad_arguments_before_starting_anything():
    for args, message in (
        (["savi_single", "--hosts", "0"], "--hosts must be 1..90"),
        (["dualhomed", "--hosts", "5"], "--hosts and --dhcp are savi_single's"),
        (["savi_single", "--ipv6"], "--coverage and --ipv6 are dualhomed's"),
        (["dualhomed", "--script", "/nonexistent/commands"], "--script"),
        (["nowhere"], "invalid choice"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "topologies", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)


CUSTOM = {"dualhomed": "topologies/dualhomed.py", "campus": "topologies/campus.py"}


def mn(topo: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``mn --custom`` with one of our topology files, running pingall (a hang fails the
    test through ``timeout``)."""
    custom = CUSTOM.get(topo.split(",")[0], "topologies/single.py")
    cmd = [MN, "--custom", custom, "--topo", topo, *args, "--test", "pingall"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def controllers_running() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if "-m controller" in line]


@pytest.mark.skipif(not os.path.exists(MN), reason="Mininet's mn")
def test_mn_without_the_savi_controller_stops_at_once_and_builds_nothing():
    before = machine_state()
    r = mn("dualhomed")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "sudo .venv/bin/python -m topologies dualhomed" in r.stderr
    assert "--topo dualhomed --controller savi" in r.stderr
    r = mn("savi_single,2", "--controller", "ref")
    assert r.returncode == 1 and "with mn's ref they never connect" in r.stderr, r.stderr
    r = mn("savi_single,2", "--controller", "remote,port=1")
    assert r.returncode == 1 and "nothing listens at 127.0.0.1:1" in r.stderr, r.stderr
    assert machine_state() == before
    assert_lock_free()


@pytest.mark.skipif(not os.path.exists(MN), reason="Mininet's mn")
@pytest.mark.parametrize(
    "topo",
    ["dualhomed", "campus,switches=3,hosts=1,coverage=0.67,multihomed=1,attackers=1"],
)
def test_mn_starts_the_savi_controller_with_the_topologys_config(topo):
    """Routed topologies: every host reaches every other across the routers, so the
    controller mn started trusts the uplinks (the topology's config) and the nodes
    have their routes (mn never calls a topology's configure())."""
    before, controllers = machine_state(), controllers_running()
    r = mn(topo, "--controller", f"savi,port={free_port()}", timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "SAVI controller: OpenFlow 127.0.0.1:" in out, out
    assert re.search(r"Results: 0% dropped \((\d+)/\1 received\)", out), out
    assert controllers_running() == controllers  # mn stopped the one it started
    assert machine_state() == before
    assert_lock_free()


@pytest.mark.skipif(not os.path.exists(MN), reason="Mininet's mn")
def test_mn_with_a_savi_controller_of_ones_own(tmp_path):
    ofp, rest = free_port(), free_port()
    log = open(tmp_path / "controller.log", "wb")
    controller = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller",
            "--ofp-port",
            str(ofp),
            "--rest-port",
            str(rest),
            "--rest-host",
            "127.0.0.1",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: listening(("127.0.0.1", ofp)), 30, "the SAVI controller to listen")
        r = mn("savi_single,2", "--controller", f"remote,port={ofp}", timeout=120)
        assert r.returncode == 0 and "0% dropped (2/2 received)" in r.stdout + r.stderr, (
            r.stdout + r.stderr
        )
    finally:
        controller.terminate()
        controller.wait(10)
        log.close()
    assert_lock_free()


@pytest.mark.skipif(not os.path.exists(MN), reason="Mininet's mn")
def test_mn_is_refused_while_a_testbed_runs(tmp_path):
    with Testbed(SingleSwitchTopo(hosts=2), log_dir=str(tmp_path / "tb")) as tb:
        r = mn("savi_single,2", "--controller", f"remote,port={tb.ofp_port}")
        assert r.returncode == 1 and "another testbed runs on this machine" in r.stderr, r.stderr
        assert str(tmp_path / "tb") in r.stderr  # it names the running one
        h1, h2 = tb.net["h1"], tb.net["h2"]
        assert ", 0% packet loss" in h1.cmd(f"ping -c1 -W2 {h2.IP()}")  # untouched
