"""The interactive testbed: a topology with everything the builder starts (SAVI
controller, management network, DHCP, the hosts' agents) and Mininet's CLI with commands
for what the testbed adds. ``sudo .venv/bin/python -m topologies dualhomed`` (or ``sudo
make cli``); everything stops when the CLI ends.

Mininet's own commands (``pingall``, ``a ping b``, ``xterm``, ...) work as usual. Added:

- ``tpbt [HOST...]``: a host's Trusted Path Binding Table, as the draft's Table 1;
- ``bindings``: the SAVI binding table (switch, port, address, MAC, source, state);
- ``drops``: the per-port drop and rejected-claim counters (non-zero rows);
- ``trust``: the controller's signed trust export (what the hosts' agents consume);
- ``spoof HOST SOURCE DESTINATION [COUNT]``: HOST sends UDP with a forged source; shows
  how many its access switch dropped;
- ``transfer [-6] [CLIENT SERVER [SECONDS]]``: an MPTCP bulk transfer, digests on both
  ends, and the hosts' TPBTs as their agents wrote them while it ran (``-6``: over IPv6,
  on a dual-stack topology such as ``dualhomed --ipv6``);
- ``attack [-6] ATTACK [STRENGTH [LOCATION]]`` (dualhomed): one trial of the attack
  experiment against the hosts as they run now (``-6``: on an IPv6 connection).
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from mininet.cli import CLI

from experiments import harness
from experiments.harness import HarnessError, Transfer, wait_until
from topologies.nodes import SaviSwitch

REPO = Path(__file__).resolve().parent.parent
STATE_POLL = 0.2  # s: the agents write their state this often (hosts.agent.TICK)
SPOOF = (
    "from scapy.all import IP, UDP, send; "
    "send(IP(src={src!r}, dst={dst!r}) / UDP(sport=4000, dport=4000) / b'spoof', "
    "count={count}, verbose=False)"
)
DROP_COUNTERS = (
    "spoofed_dropped_switch",
    "spoofed_dropped_controller",
    "rejected_claims",
    "malformed",
    "rogue_dhcp_dropped",
    "rogue_ra_dropped",
)


def table(rows: list[list], header: list[str]) -> str:
    """Rows as aligned text columns."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells)


def access_port(host) -> tuple[int, int] | None:
    """(dpid, port) of the SAVI switch port ``host`` hangs off, if any."""
    for intf in host.intfList():
        link = intf.link
        if link is None:
            continue
        other = link.intf2 if link.intf1 is intf else link.intf1
        if isinstance(other.node, SaviSwitch):
            return int(other.node.dpid, 16), other.node.ports[other]
    return None


class TestbedCLI(CLI):
    """Mininet's CLI on a running ``Testbed``; ``mode`` is the agents' (vanilla, trusted
    or enforce), recorded with an attack's trial."""

    __test__ = False
    prompt = "testbed> "

    def __init__(self, tb, mode: str, **kwargs):
        self.tb, self.mode = tb, mode
        self.work = Path(tempfile.mkdtemp(prefix="testbed-cli-", dir=tb.dir))
        self.transfers = 0
        super().__init__(tb.net, **kwargs)

    def onecmd(self, line: str) -> bool:
        """A command that fails says why; the testbed and the session go on."""
        try:
            return super().onecmd(line)
        except Exception as e:  # noqa: BLE001 - one command's failure, not the session's
            self.say(f"{line.split()[0] if line.split() else line}: {type(e).__name__}: {e}")
            return False

    def say(self, text: str) -> None:
        self.stdout.write(text.rstrip("\n") + "\n")

    def rest(self, path: str):
        doc = self.tb.get(path)
        if doc is None:
            self.say(f"the controller does not answer {path}; see {self.tb.dir}/controller.log")
        return doc

    # -- what the testbed adds ------------------------------------------------------------
    def do_tpbt(self, line: str) -> None:
        """tpbt [HOST...]: the hosts' Trusted Path Binding Tables (default: every agent)."""
        if not self.tb.agents:
            self.say("no agent runs in this topology (its hosts are single-homed or vanilla)")
            return
        for name in shlex.split(line) or sorted(self.tb.agents):
            state = self.tb.state_file(name)
            if name not in self.tb.agents or not state.exists():
                self.say(f"{name}: no agent runs there (agents: {', '.join(self.tb.agents)})")
                continue
            doc = json.loads(state.read_text())
            self.say(f"{name} (local trusted: {', '.join(doc['local_trusted']) or 'none'})")
            self.say(doc["table"] or "  no connection")

    def do_bindings(self, _line: str) -> None:
        """bindings: the SAVI binding table."""
        doc = self.rest("/savi/bindings")
        if doc is not None:
            rows = sorted(
                [b["dpid"], b["port"], b["ip"], b["mac"], b["source"], b["state"], b["expires_in"]]
                for b in doc
            )
            header = ["dpid", "port", "address", "mac", "source", "state", "expires_in"]
            self.say(table(rows, header) if rows else "no bindings")

    def do_drops(self, line: str) -> None:
        """drops [all]: per-port drop and rejected-claim counters (non-zero rows)."""
        doc = self.rest("/savi/stats")
        if doc is None:
            return
        rows = [
            [s["dpid"], s["port"], *(s.get(k, 0) for k in DROP_COUNTERS)]
            for s in sorted(doc, key=lambda s: (s["dpid"], s["port"]))
            if line.strip() == "all" or any(s.get(k, 0) for k in DROP_COUNTERS)
        ]
        self.say(table(rows, ["dpid", "port", *DROP_COUNTERS]) if rows else "nothing dropped")

    def do_trust(self, _line: str) -> None:
        """trust: the controller's trust export (addresses SAVI protects, signed)."""
        doc = self.rest("/savi/trust")
        if doc is not None:
            rows = [
                [e["ip"], e["dpid"], e["port"], e["source"], e["lifetime"]]
                for e in doc["addresses"]
            ]
            self.say(f"seq {doc['seq']}, ttl {doc['ttl']} s, signed ({doc['alg']})")
            self.say(table(rows, ["address", "dpid", "port", "source", "lifetime"]))

    def do_spoof(self, line: str) -> None:
        """spoof HOST SOURCE DESTINATION [COUNT]: forged-source UDP from HOST."""
        args = shlex.split(line)
        bad_count = len(args) == 4 and not args[3].isdigit()
        if len(args) not in (3, 4) or args[0] not in self.mn or bad_count:
            self.say(
                "usage: spoof HOST SOURCE DESTINATION [COUNT]  (e.g. spoof m1 10.1.0.10 10.3.0.20 5)"
            )
            return
        host, src, dst = self.mn[args[0]], args[1], args[2]
        count = int(args[3]) if len(args) == 4 else 5
        port = access_port(host)
        before = self.port_drops(port)
        code = SPOOF.format(src=src, dst=dst, count=count)
        out = host.cmd(f"{sys.executable} -c {shlex.quote(code)} 2>&1")
        if out.strip():
            self.say(out)  # scapy's own words: a bad address, most likely
            return
        if port is None:
            self.say(f"sent {count}; {host.name} is on no SAVI switch: nothing checks its sources")
            return
        # The controller polls the switch's drop counters every second.
        try:
            wait_until(lambda: self.port_drops(port) - before >= count, 3, "drops")
        except HarnessError:
            pass  # some went through (or the counters lag): say what was counted
        dropped = self.port_drops(port) - before
        self.say(
            f"sent {count} from {host.name} as {src}; dpid {port[0]} port {port[1]} "
            f"dropped {dropped}"
        )

    def port_drops(self, port: tuple[int, int] | None) -> int:
        for s in (self.tb.get("/savi/stats") or []) if port else []:
            if (s["dpid"], s["port"]) == port:
                return s.get("spoofed_dropped_switch", 0) + s.get("spoofed_dropped_controller", 0)
        return 0

    def do_transfer(self, line: str) -> None:
        """transfer [-6] [CLIENT SERVER [SECONDS]]: MPTCP bulk transfer (default: a to b,
        2 s; -6: over IPv6)."""
        args = shlex.split(line)
        ipv6 = args[:1] == ["-6"]
        args = args[1:] if ipv6 else args
        client, server, seconds = "a", "b", "2"
        if len(args) in (2, 3):
            client, server, seconds = (*args, seconds)[:3]
        try:
            seconds = float(seconds)
        except ValueError:
            seconds = 0.0
        if (
            len(args) not in (0, 2, 3)
            or {client, server} - set(self.mn.nameToNode)
            or not 0 < seconds <= 600
        ):
            self.say(
                "usage: transfer [-6] [CLIENT SERVER [SECONDS]]  (e.g. transfer a b 2; "
                "at most 600 s)"
            )
            return
        to = self.mn[server].IP()
        if ipv6:
            to = next((a for a in self._addresses(server) if ":" in a), None)
            if to is None:
                self.say(f"{server} has no global IPv6 address (dualhomed --ipv6 has them)")
                return
        self.transfers += 1
        xfer = Transfer(
            self.tb,
            to=to,
            seconds=seconds,
            client=client,
            server=server,
            port=5300 + self.transfers % 100,
            timeout=seconds + 30,
        )
        # The connection is gone once the transfer ends: its TPBT rows are shown as the
        # agents last wrote them while it ran.
        during = {}
        deadline = time.monotonic() + seconds + 30  # then results() says it hung
        while xfer.client.poll() is None and time.monotonic() < deadline:
            for name in (client, server):
                table = self._live_table(name)
                if table is not None:
                    during[name] = table
            time.sleep(STATE_POLL)
        got, sent = xfer.results()
        same = got["sha256"] == sent["sha256"] and got["bytes"] == sent["bytes"]
        mbps = 8 * got["bytes"] / seconds / 1e6
        self.say(
            f"{client} -> {server}: {got['bytes']} bytes in {seconds:g} s "
            f"({mbps:.0f} Mbit/s), digests {'equal' if same else 'DIFFER'}"
        )
        for name, table in during.items():
            self.say(f"{name}'s TPBT during the transfer:\n{table}")

    def _addresses(self, host: str) -> list[str]:
        """The host's addresses its agent manages (the topology's plan), else those of
        its interfaces that are global."""
        planned = self.tb.topo.agent_hosts() if hasattr(self.tb.topo, "agent_hosts") else {}
        if host in planned:
            return planned[host]
        out = []
        for line in self.mn[host].cmd("ip -o addr show scope global").splitlines():
            words = line.split()
            for family in ("inet", "inet6"):
                if family in words[:-1]:
                    out.append(words[words.index(family) + 1].split("/")[0])
        return out

    def _live_table(self, host: str) -> str | None:
        """The host's TPBT as its agent last wrote it, if it shows a connection."""
        if host not in self.tb.agents or not self.tb.state_file(host).exists():
            return None
        table = self.tb.tpbt(host)["table"]  # written whole (renamed into place)
        return table if table and table != "(no connections)" else None

    def do_attack(self, line: str) -> None:
        """attack [-6] ATTACK [STRENGTH [LOCATION]]: one trial of the attack experiment
        (dualhomed; defaults: eavesdrop, unprotected; -6: on an IPv6 connection, with
        dualhomed --ipv6)."""
        from experiments import attacks
        from experiments.records import Cell
        from experiments.run import LOCATIONS, STRENGTHS
        from experiments.trial import run_trial

        args = shlex.split(line)
        family = "v6" if args[:1] == ["-6"] else "v4"
        args = args[1:] if family == "v6" else args
        defaults = ["", "eavesdrop", "unprotected"]
        attack, strength, location = args + defaults[len(args) :] if len(args) <= 3 else defaults
        if not {"a", "b", "m1", "m2"} <= set(self.mn.nameToNode):
            self.say("attacks run on the dualhomed topology (hosts a, b, m1, m2)")
            return
        if (
            strength not in STRENGTHS
            or location not in LOCATIONS
            or attack not in attacks.attacks_of(strength)
        ):
            self.say(
                f"usage: attack [-6] ATTACK [STRENGTH [LOCATION]]; strengths "
                f"{', '.join(STRENGTHS)}, locations {', '.join(LOCATIONS)}, attacks "
                f"{', '.join(attacks.attacks_of(strength))}"
            )
            return
        if family == "v6" and not getattr(self.tb.topo, "ipv6", False):
            self.say("attack -6 needs the dual-stack topology: dualhomed --ipv6")
            return
        cell = Cell(self.tb.topo.coverage, self.mode, location, attack, strength, family)
        started = time.monotonic()
        record = run_trial(self.tb, cell, 1, self.work / f"{attack}-{int(started)}")
        verdict = "succeeded" if record["success"] else "failed"
        self.say(
            f"{cell.key}: the attack {verdict} ({record['evidence'] or 'no evidence'}) "
            f"in {time.monotonic() - started:.1f} s"
        )


def start_mode(tb, mode: str) -> None:
    """The hosts' path managers: the kernel's (vanilla) or the agents'."""
    if hasattr(tb.topo, "agent_hosts"):
        harness.set_mode(tb, mode)


def warm_up(tb) -> None:
    """Bindings in place before the first command: each address's first packets claim
    it at its SAVI switch (the experiments' warm-up on dualhomed, a ping round elsewhere)."""
    if {"a", "b", "m1", "m2"} <= set(tb.net.nameToNode):
        harness.warm_up(tb)
    else:
        tb.net.pingAll(timeout=1)


def run(tb, mode: str, script: str | None = None) -> None:
    """Open the CLI on a started testbed (commands from ``script`` if given, then end)."""
    warm_up(tb)
    start_mode(tb, mode)
    print(
        f"testbed up in {tb.start_seconds:.1f} s: {' '.join(n.name for n in tb.net.hosts)}; "
        f"host mode {mode}; logs in {tb.dir}; live view at {tb.view_url}. "
        "Type help; exit or Ctrl-D stops everything."
    )
    TestbedCLI(tb, mode, script=script)
