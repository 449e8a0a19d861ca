"""Running things in the testbed's hosts: the legitimate transfer, captures, kernel
counters, host modes. Shared by the experiment runner and the integration tests."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

from topologies.dualhomed import B_TRUSTED, PLANS

REPO = Path(__file__).resolve().parents[1]
MODES = ("vanilla", "trusted", "enforce")


class HarnessError(RuntimeError):
    """Something in the testbed did not do what a trial needs (not an attack outcome)."""


class TransferTimeout(HarnessError):
    """A transfer still running when its time was up (both ends killed): a broken
    testbed, or an attack that wrecked the connection without ending it (a trial asks
    the attack to explain it, experiments.trial.explains_broken_transfer)."""


def wait_until(predicate, timeout: float = 10, what: str = "condition", interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise HarnessError(f"timed out after {timeout}s waiting for {what}")


class Capture:
    """tcpdump in a host, started before and read after the packets of interest. It
    writes each packet as it comes (-U), so the file can be read while it runs."""

    def __init__(self, host, iface: str, bpf: str, path: Path, snaplen: int = 0):
        self.host, self.path, self.snaplen = host, path, snaplen
        # One failed start was seen in CI (tcpdump gone before printing anything); try
        # again before calling the capture broken, and say how it ended.
        for _attempt in range(3):
            self.proc, line = self._start(iface, bpf)
            if "listening on" in line:
                return
            self.proc.kill()
            self.proc.wait(10)
        raise HarnessError(
            f"tcpdump did not start in {host.name}: {line!r}, "
            f"exit status {self.proc.returncode}"
        )

    def _start(self, iface: str, bpf: str):
        proc = self.host.popen(
            [
                "tcpdump",
                "-Z",
                "root",
                "--immediate-mode",
                "-i",
                iface,
                "-U",
                "-n",
                "-s",
                str(self.snaplen),
                "-w",
                str(self.path),
                bpf,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # tcpdump says "listening on" once its socket is open; only then is nothing missed.
        line = ""
        deadline = time.monotonic() + 10
        while "listening on" not in line and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 1)
            line = proc.stderr.readline().decode() if ready else ""
            if ready and not line:
                break  # tcpdump exited
        return proc, line

    def stop(self, settle: float = 0.3) -> None:
        time.sleep(settle)
        self.proc.terminate()
        self.proc.wait(10)

    def lines(self, bpf: str = "") -> list[str]:
        """tcpdump's decoding of the captured packets (with link-layer headers)."""
        r = subprocess.run(
            ["tcpdump", "-e", "-n", "-v", "-r", str(self.path), *([bpf] if bpf else [])],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return [line for line in r.stdout.splitlines() if line.strip() and not line[0].isspace()]

    def count(self, bpf: str = "") -> int:
        return len(self.lines(bpf))


class Transfer:
    """experiments.transfer: server in b, client in a, started together."""

    def __init__(
        self,
        tb,
        nbytes: int = 20_000_000,
        to: str = B_TRUSTED,
        bind: str | None = None,
        pause: float = 0.5,
        port: int = 5201,
        seconds: float | None = None,
        rate_mbps: float | None = None,
        idle: float = 0.0,
        timeout: float = 60.0,
        seed: int = 1,
        client: str = "a",
        server: str = "b",
        tcp: bool = False,
        wait_subflows: int = 0,
        defer_client: bool = False,
    ):
        """``defer_client``: only the server starts now; ``start_client()`` starts the
        client (many transfers' clients can then start together, wherever their
        servers took long to start: cluster mode's remote ones)."""
        srv = tb.net[server]
        self.port = port
        self.client = None
        self.server = srv.popen(
            [
                sys.executable,
                "-m",
                "experiments.transfer",
                "server",
                "--port",
                str(port),
                "--timeout",
                str(timeout),
                *(["--tcp"] if tcp else []),
                *_listen_family(to),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:  # a timeout, Ctrl-C or SIGTERM while starting: no server outlives it
            wait_until(
                lambda: f":{port}" in srv.cmd(f"ss -Hltn sport = :{port}"),
                10,
                f"the transfer server to listen on {port}",
            )
            cmd = [
                sys.executable,
                "-m",
                "experiments.transfer",
                "client",
                "--to",
                to,
                "--port",
                str(port),
                "--bytes",
                str(nbytes),
                "--pause",
                str(pause),
                "--timeout",
                str(timeout),
                "--seed",
                str(seed),
            ]
            if bind:
                cmd += ["--bind", bind]
            if seconds:
                cmd += ["--seconds", str(seconds)]
            if rate_mbps:
                cmd += ["--rate-mbps", str(rate_mbps)]
            if idle:
                cmd += ["--idle", str(idle)]
            if tcp:
                cmd += ["--tcp"]
            if wait_subflows:
                cmd += ["--wait-subflows", str(wait_subflows)]
            self._client_node, self._client_cmd = tb.net[client], cmd
            if not defer_client:
                self.start_client()
        except BaseException:
            self.kill()
            raise

    def start_client(self) -> None:
        self.started = time.monotonic()
        self.client = self._client_node.popen(
            self._client_cmd, cwd=REPO, stdout=subprocess.PIPE, text=True
        )

    def outcome(self, timeout: float = 120) -> tuple[dict, dict]:
        """(client, server) results; either may hold an ``error``."""
        try:
            out_c, _ = self.client.communicate(timeout=timeout)
            out_s, _ = self.server.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TransferTimeout(f"the transfer did not end within {timeout}s") from None
        except BaseException:  # Ctrl-C, SIGTERM: neither end outlives the caller
            self.kill()
            raise
        return _json(out_c, "client"), _json(out_s, "server")

    def results(self, timeout: float = 120) -> tuple[dict, dict]:
        """(client, server) results of a transfer that must have worked."""
        client, server = self.outcome(timeout)
        for side, result in (("client", client), ("server", server)):
            if "error" in result:
                raise HarnessError(f"transfer {side} failed: {result['error']}")
        return client, server

    def kill(self) -> None:
        for p in (self.client, self.server):
            if p is None:
                continue
            if p.poll() is None:
                p.kill()
            p.wait(10)


def _listen_family(to: str) -> list[str]:
    """The server's socket for a client that connects to ``to``: IPv4, IPv6 only, or
    (an IPv4-mapped address: the client's socket is IPv6) one that takes both."""
    if to.startswith("::ffff:"):
        return ["--dual-stack"]
    return ["--ipv6"] if ":" in to else []


def _json(text: str, side: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        return {"error": f"the {side} printed no result: {text.strip()[:200]!r}"}


# Segments a host's MPTCP sockets dropped as beyond the data-level window they had
# announced: the kernel's stale-window stall with userspace TSO (docs/line-rate.md), or
# data injected past the window.
WINDOW_DROPS = "MPTcpExtNoDSSInWindow"


def mib(host) -> dict[str, int]:
    """Every kernel MIB counter of a host's namespace (absolute values)."""
    out = host.cmd("nstat -saz")
    counters = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            counters[parts[0]] = int(parts[1])
    if "MPTcpExtMPCurrEstab" not in counters:
        raise HarnessError(f"no MPTCP counters in {host.name}: {out[:200]!r}")
    return counters


def set_mode(tb, mode: str) -> None:
    """Host mode of the multi-homed hosts: ``vanilla`` (the kernel's own path manager,
    full mesh), ``trusted`` (our agents) or ``enforce`` (agents with --enforce)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    for name in list(tb.agents):
        tb.stop_agent(name)
    # The connections' initiators (the dual-homed topology's a; a campus's multi-homed
    # hosts): in vanilla mode they open the subflows, the others announce.
    clients = set(getattr(tb.topo, "mptcp_clients", ("a",)))
    for host, addrs in tb.topo.agent_hosts().items():
        node = tb.net[host]
        node.cmd("ip mptcp endpoint flush")
        if mode == "vanilla":
            node.cmd("sysctl -qw net.mptcp.path_manager=kernel")
            node.cmd("ip mptcp limits set subflows 8 add_addr_accepted 8")
            # A full mesh like the agents': the client opens subflows from each of its
            # addresses (to the server's first address and to each one announced); the
            # server announces its other address.
            if host in clients:
                for addr_id, addr in enumerate(addrs, start=1):
                    node.cmd(f"ip mptcp endpoint add {addr} id {addr_id} subflow fullmesh")
            else:
                for addr_id, addr in enumerate(addrs[1:], start=2):
                    node.cmd(f"ip mptcp endpoint add {addr} id {addr_id} signal")
    if mode != "vanilla":
        tb.start_agents(extra=["--enforce"] if mode == "enforce" else None)


def pin_neighbours(tb, host: str, addr: str, gateway: str) -> None:
    """No ARP from or for ``addr`` while its binding is taken away: one would claim the
    address again at its SAVI switch (FCFS) and bring the trust back on its own."""
    h, r1 = tb.net[host], tb.net["r1"]
    own = next(i for i in h.intfList() if i.IP() == addr)
    router = next(i for i in r1.intfList() if i.IP() == gateway)
    h.cmd(f"ip neigh replace {gateway} lladdr {router.MAC()} dev {own.name} nud permanent")
    r1.cmd(f"ip neigh replace {addr} lladdr {own.MAC()} dev {router.name} nud permanent")


# The TCP states in which a socket still sends or takes segments (ss's names).
LIVE_STATES = (
    "established",
    "syn-sent",
    "syn-recv",
    "fin-wait-1",
    "fin-wait-2",
    "close-wait",
    "last-ack",
    "closing",
)


def abort_leftovers(tb, hosts: tuple[str, ...], ports: tuple[int, ...]) -> int:
    """Abort every live TCP socket on ``ports`` in ``hosts`` (``ss -K``: SOCK_DESTROY,
    which resets it) and say how many there were. A trial's connection must be the only
    one its attacker can reach: one from an earlier trial that is still closing (a forged
    RM_ADDR or FIN can leave a subflow retransmitting for minutes) shows on the tap, and
    if it was made before the current agents started they do not know it, so a forgery
    on it is acted on and moves the victim's host-wide counters — rm_addr trial 11 of the
    runs of dc73e82 and f41bd15. (That hosts do not guard connections older than their
    agent stays a documented limit.)"""
    states = " ".join(f"state {s}" for s in LIVE_STATES)
    match = " or ".join(f"sport = :{p} or dport = :{p}" for p in ports)
    aborted = 0
    for name in hosts:
        host = tb.net[name]
        out = host.cmd(f"ss -K -tnH {states} '( {match} )'")
        aborted += len([line for line in out.splitlines() if line.strip()])
        wait_until(
            lambda h=host: not h.cmd(f"ss -tnH {states} '( {match} )'").strip(),
            5,
            f"the leftover connections in {name} to go",
        )
    return aborted


def warm_up(tb) -> None:
    """Bindings and ARP (or neighbour) entries in place before any trial: the first
    packets from each address claim it at its SAVI switch (a's two, b's, the
    attackers'); on a dual-stack testbed for both families (IPv6's addresses were bound
    by their DAD)."""
    a, b = tb.net["a"], tb.net["b"]
    families = ("v4", "v6") if getattr(tb.topo, "ipv6", False) else ("v4",)
    for family in families:
        plan, ping = PLANS[family], "ping -6" if family == "v6" else "ping"
        (a_trusted, a_untrusted), (b_trusted, b_untrusted) = plan.a, plan.b
        for src in (a_trusted, a_untrusted):
            a.cmd(f"{ping} -c1 -W2 -I {src} {b_trusted}")
        a.cmd(f"{ping} -c1 -W2 -I {a_untrusted} {b_untrusted}")
        b.cmd(f"{ping} -c1 -W2 {a_trusted}")
        for m in ("m1", "m2"):
            tb.net[m].cmd(f"{ping} -c1 -W2 {a_trusted}")
        # The eavesdroppers know a's MAC on their network from their taps: no ARP round
        # trip (through the SAVI controller) before a forgery, which would make an early
        # strike late.
        for m, addr, a_link in (("m1", a_trusted, "a-eth0"), ("m2", a_untrusted, "a-eth1")):
            attacker = tb.net[m]
            mac = a.intf(a_link).MAC()
            attacker.cmd(
                f"ip neigh replace {addr} lladdr {mac} "
                f"dev {attacker.intfList()[0].name} nud permanent"
            )
