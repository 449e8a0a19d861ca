"""Helpers for integration tests: raw packets from inside hosts, captures at victims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from experiments.harness import Capture, wait_until  # noqa: F401  (re-exported for tests)
from topologies.campus import SERVER

REPO = Path(__file__).resolve().parents[2]


def send_frames(host, iface: str, scapy_expr: str, count: int = 1) -> None:
    """Send ``count`` copies of a scapy frame (an expression, e.g. ``Ether()/IP()``) from
    ``host``: raw packets on the wire, whatever the host's own addresses are."""
    code = (
        "from scapy.all import *; import sys\n"
        f"sendp({scapy_expr}, iface={iface!r}, count={count}, verbose=False)\n"
    )
    r = host.popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = r.communicate(timeout=60)
    assert r.returncode == 0, err.decode()


def stat(tb, port: int, field: str, dpid: int = 1) -> int:
    for row in tb.get("/savi/stats") or []:
        if (row["dpid"], row["port"]) == (dpid, port):
            return row[field]
    return 0


def bindings(tb, **where) -> list[dict]:
    return [b for b in tb.get("/savi/bindings") or [] if all(b[k] == v for k, v in where.items())]


def campus_spoofing(tb, tmp_path, count: int = 5) -> tuple[dict[str, int], dict[str, int]]:
    """On a campus, each attacker sends ``count`` UDP frames with a host's address as
    source toward the server, through the router's port on its own access network;
    returns (how many reached the server, per attacker; how many should: none from a
    SAVI network, all from a legacy one)."""
    topo, router = tb.topo, tb.net["r0"]
    victim = next(h for h in topo.addresses if h.startswith("h"))  # whose address is forged
    forged = topo.addresses[victim][0]
    arrived = {}
    for attacker in topo.attackers:
        cap = Capture(
            tb.net["srv"],
            "srv-eth0",
            f"udp port 9999 and src {forged}",
            tmp_path / f"{attacker}.pcap",
        )
        gateway = topo.gateways[topo.addresses[attacker][0]]
        router_mac = next(i for i in router.intfList() if i.IP() == gateway).MAC()
        send_frames(
            tb.net[attacker],
            f"{attacker}-eth0",
            f"Ether(dst='{router_mac}')/IP(src='{forged}',dst='{SERVER}')"
            "/UDP(sport=9999,dport=9999)",
            count=count,
        )
        cap.stop()
        arrived[attacker] = cap.count()
    expected = {m: 0 if topo.on_savi[topo.addresses[m][0]] else count for m in topo.attackers}
    return arrived, expected


def path_report(tb, host: str, addr: str, to: str = SERVER) -> str:
    """What the nodes on a path from ``host`` (source ``addr``) to ``to`` know, for a
    failed reachability wait: a last ping, each routed node's neighbours and routes,
    each switch's flows with their counters, the SAVI bindings and the controller log's
    end. A flake seen once in CI leaves its cause in the assertion's message."""
    lines = [f"$ ping -c1 -W1 -I {addr} {to}", tb.net[host].cmd(f"ping -c1 -W1 -I {addr} {to}")]
    for node in [tb.net[host], *(n for n in tb.net.hosts if n.name in ("r0", "srv"))]:
        lines.append(f"--- {node.name}: ip -s neigh; ip route; ip -br addr")
        lines.append(node.cmd("ip -s neigh; ip route; ip -br addr"))
    for switch in tb.net.switches:
        lines.append(f"--- {switch.name} flows\n{switch.dpctl('dump-flows', '-O', 'OpenFlow13')}")
    lines.append(f"--- bindings {tb.get('/savi/bindings')}")
    log = tb.dir / "controller.log"
    if log.exists():
        lines.append("--- controller.log (end)\n" + log.read_text(errors="replace")[-4000:])
    return "\n".join(lines)
