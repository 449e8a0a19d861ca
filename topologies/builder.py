"""Start and stop a whole testbed: SAVI controller, OVS switches, hosts, management net.

``Testbed(topo)`` is a context manager. On entry it starts the controller (a child
process, in the root namespace), the Mininet network with the topology's switches, turns
off TX checksum offload in every node where the datapath would not finish checksums
(userspace without TSO: ``host_offloads``), puts the work-around for the kernel's
stale-window stall on the MPTCP endpoints' egress (hosts/stale_window.py; off with
``TMPTCP_STALE_WINDOW_FILTER=off``), connects every host to a management bridge
from which it reaches the controller's REST API (apart from the data network, so no
data-plane host can reach or forge it), waits until every SAVI switch has its flows (no
fixed sleeps), starts DHCP servers and clients, and configures routes. On exit it stops
everything it started, by PID. With ``cluster=Cluster(...)`` the nodes are spread over
several servers with Mininet Cluster Edition (topologies/cluster.py, docs/cluster.md).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mininet.net import Mininet

from controller.trust import generate_keypair
from hosts.stale_window import OBJECT as WINDOW_FILTER_OBJECT
from hosts.stale_window import PREF as WINDOW_FILTER_PREF
from hosts.stale_window import StaleWindowFilter
from topologies.cluster import (
    CLUSTER_MTU,
    VXLAN_PORT,
    Cluster,
    ClusterNet,
    VxlanLink,
    on_server,
    source_address_toward,
)
from topologies.links import BatchedMininet
from topologies.nodes import OpenFlowController, SaviSwitch, ovs_datapath, userspace_tso

REPO = Path(__file__).resolve().parent.parent
MGMT_BRIDGE = "savimgmt0"
MGMT_NET = "172.31.254"
UDHCPC_SCRIPT = Path(__file__).with_name("udhcpc.script")
DHCLIENT6_SCRIPT = Path(__file__).with_name("dhclient6.script")


# Linux 6.18's MPTCP receiver can deadlock when the connection-level receive buffer is
# full of out-of-order data while the next in-order bytes wait on a subflow: the data
# ACK stops and the sender retransmits forever (seen in 1 of ~10 bulk transfers with the
# default 128 KiB start, with and without our agents). A 1 MiB start made 50 of 50 clean.
HOST_TCP_RMEM = "4096 1048576 16777216"


def host_offloads() -> str | None:
    """What ``ethtool -K`` sets on every host interface, or None for the kernel's
    defaults: a userspace datapath without TSO does not finish the checksums hosts leave
    to the NIC, so they must compute them; with userspace TSO (docs/line-rate.md) or
    the kernel datapath, the defaults are right and fast."""
    return None if userspace_tso() or ovs_datapath() == "kernel" else "tx off rx off"


def stale_window_filter_enabled() -> bool:
    """Whether hosts get the egress filter of hosts/bpf/stale_window.c, the work-around
    for Linux MPTCP's stale-window edge (docs/line-rate.md): on unless
    ``TMPTCP_STALE_WINDOW_FILTER=off``, which shows the kernel's own behaviour (the stall
    included)."""
    setting = os.environ.get("TMPTCP_STALE_WINDOW_FILTER", "on")
    if setting not in ("on", "off"):
        raise TestbedError(f"TMPTCP_STALE_WINDOW_FILTER is on or off, not {setting!r}")
    return setting == "on"


def offload_mode() -> str:
    """One line for provenance: datapath, userspace TSO, the hosts' offloads and whether
    they run the stale-window filter."""
    offloads = host_offloads()
    hosts = f"ethtool -K <every host interface> {offloads}" if offloads else "kernel defaults"
    tso = "on" if userspace_tso() else "off"
    window = "on" if stale_window_filter_enabled() else "off"
    return (
        f"datapath {ovs_datapath()}, userspace TSO {tso}, host offloads: {hosts}, "
        f"stale-window ACK filter {window}"
    )


class TestbedError(RuntimeError):
    __test__ = False
    pass


def exit_on_sigterm() -> None:
    """Make SIGTERM (a ``kill``, ``timeout``, a CI runner cancelling a job) end this
    program the way Ctrl-C does: as an exception in the main thread, so every ``finally``
    and ``with`` runs and the testbed, controller, agents and helpers it started are
    stopped. Python's default would end it at once and leave them all running. A second
    SIGTERM while that cleanup runs is ignored (SIGKILL still ends it). For the programs
    that build testbeds; call it from the main thread."""

    def stop(signum, _frame):
        # Not SIG_IGN: the commands the cleanup starts would inherit it.
        signal.signal(signal.SIGTERM, lambda *_: None)
        print("stopping (SIGTERM): taking down what was started", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def _netns_inode(pid: int | None) -> int | None:
    """The network namespace ``pid`` is in (the inode of its /proc link), or None if it
    has gone."""
    if pid is None:
        return None
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def require_root() -> None:
    if os.geteuid() != 0:
        raise TestbedError("the testbed needs root (network namespaces, OVS): run with sudo")


def free_port() -> int:
    """A loopback TCP port free now (for a controller's OpenFlow or REST listener)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unsupported_link_params(topo) -> list[str]:
    """Link options this kernel cannot apply: delay, jitter and loss need netem."""
    if have_netem():
        return []
    bad = []
    for n1, n2, info in topo.links(withInfo=True):
        for key in ("delay", "jitter", "loss"):
            if (
                info.get(key)
                or info.get("params1", {}).get(key)
                or info.get("params2", {}).get(key)
            ):
                bad.append(f"{n1}-{n2} {key}={info.get(key)}")
    return bad


def have_netem() -> bool:
    probe = subprocess.run(
        ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode == 0:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False)
        return True
    return False


LOCK_PATH = Path("/run/tmptcp-testbed.lock")


class TestbedBusy(TestbedError):
    """Another testbed runs on this machine."""


class MachineLock:
    """One testbed per machine. Two share Open vSwitch, the management bridge and fixed
    names, so a second one would tear the first down. An flock (released by the kernel
    when its holder dies, however it dies) on a file that names the holder."""

    def __init__(self, path: Path = LOCK_PATH):
        self.path, self.fd = path, None

    def acquire(self, what: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise TestbedBusy(
                f"another testbed runs on this machine ({holder}); it shares Open vSwitch "
                "and the bridge names with this one, so starting would tear it down. Wait "
                "for it to end (or stop it by its pid); nothing of it was touched."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, {what}, since {time.strftime('%H:%M:%S')}".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# The device group a testbed's switch-side veths are put in to be deleted together (one
# testbed at a time holds the machine's lock, so no other testbed's are in it).
STOP_GROUP = 4242


class Testbed:
    __test__ = False  # not a pytest class, despite the name

    def __init__(
        self,
        topo,
        controller_args: list[str] | None = None,
        log_dir: str | None = None,
        cluster: Cluster | None = None,
    ):
        self.topo = topo
        self.cluster = cluster  # None: every node on this machine
        self.controller_args = controller_args or []
        # Absolute: the hosts' daemons get paths in it and run elsewhere (dhclient -6
        # refuses a lease file it cannot resolve, and a relative --resume DIR broke so).
        self.dir = Path(log_dir or tempfile.mkdtemp(prefix="savi-testbed-")).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.made_dir = log_dir is None  # ours to remove if the testbed is refused
        self.ofp_port = free_port()
        self.rest_port = free_port()
        self.key_file = self.dir / "trust.key"  # the controller's Ed25519 private key
        self.pubkey_file = self.dir / "trust.pub"  # what the hosts get
        self.token_file = self.dir / "api.token"  # the credential for REST writes
        self.config_file = self.dir / "savi.json"
        self.controller: subprocess.Popen | None = None
        self.net: Mininet | None = None
        self.daemons: list[subprocess.Popen] = []  # started in hosts
        self.dhcp_clients: dict[str, subprocess.Popen] = {}  # host name -> udhcpc
        self.dhcp6_clients: dict[str, subprocess.Popen] = {}  # host name -> dhclient -6
        self.agents: dict[str, subprocess.Popen] = {}  # host name -> Trusted MPTCP agent
        self.mgmt_links: list[str] = []
        self.window_filter: StaleWindowFilter | None = None  # on MPTCP endpoints' egress
        self.with_window_filter = True  # read from the environment on entry
        self.lock = MachineLock()

    # -- public --------------------------------------------------------------------------
    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def view_url(self) -> str:
        """The live view, a page served by the controller (open it in a browser)."""
        return self.rest_url + "/savi/view"

    @property
    def python(self) -> str:
        """A shell prefix that runs this repo's Python (venv, modules) inside a host."""
        return f"env PYTHONPATH={REPO} {sys.executable}"

    @property
    def mgmt_url(self) -> str:
        """The REST API as hosts reach it, over the management network."""
        return f"http://{MGMT_NET}.1:{self.rest_port}"

    def __enter__(self) -> Testbed:
        try:
            require_root()
            self.with_window_filter = stale_window_filter_enabled()  # a bad value: refused
            bad = _unsupported_link_params(self.topo)  # touches only the root netns's lo
            if bad:
                raise TestbedError(
                    "link delay/loss need tc netem, which this kernel lacks; refusing to "
                    f"run without them: {', '.join(bad)}"
                )
            self.lock.acquire(f"{' '.join(sys.argv)[:200]}, run folder {self.dir}")
        except BaseException:
            # Refused before anything ran: a temporary run folder of ours is still empty
            # and would be left in /tmp for nothing.
            if self.made_dir and not any(self.dir.iterdir()):
                self.dir.rmdir()
            raise
        try:
            self.start()
        except BaseException:
            self.stop()
            self.lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            self.lock.release()

    def start(self) -> None:
        t0 = time.monotonic()
        generate_keypair(self.key_file, self.pubkey_file)
        self.token_file.write_text(secrets.token_hex(24))
        self.token_file.chmod(0o600)
        self.config_file.write_text(json.dumps(self.topo.savi_config(), indent=2))
        self.start_controller()
        params = {
            "topo": self.topo,
            "controller": None,
            "build": False,
            "autoSetMacs": False,
            "waitConnected": False,
        }
        if self.cluster is None:
            self.net = BatchedMininet(**params)
            controller_ip = "127.0.0.1"
        else:
            self.net = ClusterNet(self.cluster, **params)
            controller_ip = self.cluster_address()
        self.net.addController(
            "c0", controller=OpenFlowController, ip=controller_ip, port=self.ofp_port
        )
        self.net.build()
        self.net.start()
        offload_args = host_offloads()
        filtered = self.window_filter_hosts() if self.with_window_filter else set()
        if filtered:
            self.window_filter = StaleWindowFilter(f"testbed-{os.getpid()}")
        for node in self.net.hosts:  # one round trip to each node's shell
            intfs = [intf.name for intf in node.intfList() if intf.name != "lo"]
            offloads = [
                f"ethtool -K {intf} {offload_args} >/dev/null 2>&1"
                for intf in intfs
                if offload_args
            ]
            setup = "; ".join([f"sysctl -qw net.ipv4.tcp_rmem='{HOST_TCP_RMEM}'", *offloads])
            if node.name not in filtered:
                node.cmd(setup)
                continue
            attach = [c for intf in intfs for c in self._window_filter_commands(node, intf)]
            out = node.cmd(f"{setup}; {' && '.join([*attach, 'echo filtered'])} 2>&1")
            if not out.strip().endswith("filtered"):
                raise TestbedError(f"{node.name}: stale-window filter: {out.strip()[-400:]}")
        self._start_mgmt()
        self.wait_for_flows()
        if hasattr(self.topo, "configure"):
            self.topo.configure(self.net)
        servers6 = dict(self.topo.dhcp6_servers())
        for host, (intf, first, last) in self.topo.dhcp_servers().items():
            self.start_dhcp_server(self.net[host], intf, first, last, v6=servers6.pop(host, None))
        for host, ranges in servers6.items():  # DHCPv6 only (routers of a dual-stack topology)
            self.start_dhcp6_server(self.net[host], ranges)
        for host in self.topo.dhcp_clients:
            self.dhcp_client(self.net[host])
        for host in self.topo.dhcp6_clients:
            self.dhcp6_client(self.net[host])
        self.start_seconds = time.monotonic() - t0

    def stop(self) -> None:
        for name in list(self.agents):
            self.stop_agent(name)
        for proc in reversed(self.daemons):
            _stop(proc)
        self.daemons = []
        try:
            if self.net is not None:
                self._reclaim_shells()
                self._kill_strays()
                self._delete_switch_links()
                self.net.stop()
        finally:
            self.net = None
            if self.window_filter is not None:  # its hosts' interfaces are gone
                self.window_filter.close()
                self.window_filter = None
            self._stop_rest()

    def window_filter_hosts(self) -> set[str]:
        """Hosts that get the stale-window filter: the MPTCP endpoints, those that run
        agents (or the kernel's path manager in their place). Not routers, which only
        forward what their hosts' egress already filtered, and not attackers: what an
        attack sends must reach the wire as it was made."""
        return set(self.topo.agent_hosts()) if hasattr(self.topo, "agent_hosts") else set()

    def _window_filter_commands(self, node, intf: str) -> list[str]:
        """The testbed's pinned program where the host shares this machine's bpffs; a
        host on another server loads the object itself (the repository lies at the same
        path there, docs/cluster.md; its counters stay on that server)."""
        if getattr(node, "isRemote", False):
            return [
                f"tc qdisc replace dev {intf} clsact",
                f"tc filter replace dev {intf} egress pref {WINDOW_FILTER_PREF} bpf obj"
                f" {WINDOW_FILTER_OBJECT} sec tc direct-action",
            ]
        return self.window_filter.attach_commands(intf)

    def _reclaim_shells(self) -> None:
        """A stop that interrupted a node's command (Ctrl-C or SIGTERM while the main
        thread read its shell) finds that node still waiting for the output, and Mininet
        refuses to send it anything more, the stop's own commands included, which would
        leave the testbed up. Interrupt whatever runs in such a shell and take it back; the
        stop's commands do not read their output."""
        for node in (*self.net.hosts, *self.net.switches, *self.net.controllers):
            if getattr(node, "waiting", False):
                node.sendInt()
                node.waiting = False

    def _kill_strays(self) -> None:
        """Kill, by PID, every process still in a host's network namespace but the
        host's shell. Mininet's ``popen`` detaches what it starts (``mnexec -d``: a
        session of its own), so stopping the shells leaves it running, and a program
        stopped (SIGTERM, Ctrl-C) while it started one, before it held the handle to
        kill it, could not kill it itself. Hosts on other servers are left to theirs."""
        ours = _netns_inode(os.getpid())  # a host in it (no namespace of its own): skipped
        shells = {node.pid for node in self.net.hosts}
        namespaces = {
            ino
            for node in self.net.hosts
            if not getattr(node, "isRemote", False)
            and (ino := _netns_inode(node.pid)) not in (None, ours)
        }
        if not namespaces:
            return
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) in shells:
                continue
            if _netns_inode(int(entry.name)) in namespaces:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except ProcessLookupError:  # it ended meanwhile
                    pass

    def _stop_rest(self) -> None:
        for link in self.mgmt_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        self.mgmt_links = []
        subprocess.run(["ip", "link", "del", MGMT_BRIDGE], capture_output=True, check=False)
        if self.controller is not None:
            _stop(self.controller)
            self.controller = None

    def _delete_switch_links(self) -> None:
        """Delete every link with an end on a switch in one ``ip -batch`` in the root
        namespace (deleting one end of a veth deletes both). Mininet's stop would delete
        each end of each link with a command in its node's shell: two round trips per
        link, most of a large testbed's stop time. Links it could not delete stay for
        Mininet's own stop."""
        switches = set(self.net.switches)
        ends = {}
        for link in self.net.links:
            ends_of = [i.node for i in (link.intf1, link.intf2) if i is not None]
            if any(getattr(node, "isRemote", False) for node in ends_of):
                continue  # on another server: Mininet's stop deletes it there
            for intf in (link.intf1, link.intf2):
                if intf is not None and intf.node in switches:
                    ends[link] = intf.name
                    break
        if not ends:
            return
        # Into one device group, then the group in one go: the kernel unregisters them
        # together (one RCU grace period for all; deleted one by one, each costs its own,
        # ~17 ms here).
        script = "".join(f"link set dev {name} group {STOP_GROUP}\n" for name in ends.values())
        script += f"link del group {STOP_GROUP}\n"
        subprocess.run(
            ["ip", "-force", "-batch", "-"],
            input=script,
            text=True,
            capture_output=True,
            check=False,
        )
        left = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
        existing = {line.split(":", 2)[1].strip().split("@")[0] for line in left.splitlines()}
        deleted = {link for link, name in ends.items() if name not in existing}
        self.net.links = [link for link in self.net.links if link not in deleted]

    def savi_switches(self) -> list:
        return [s for s in self.net.switches if isinstance(s, SaviSwitch)]

    # -- controller ----------------------------------------------------------------------
    def start_controller(self) -> None:
        log = open(self.dir / "controller.log", "ab")
        cmd = [
            sys.executable,
            "-m",
            "controller",
            "--ofp-port",
            str(self.ofp_port),
            "--rest-port",
            str(self.rest_port),
            "--config",
            str(self.config_file),
            "--trust-key-file",
            str(self.key_file),
            "--api-token-file",
            str(self.token_file),
            "--agent-state-dir",
            str(self.dir),
            *self.controller_args,
        ]
        self.controller = subprocess.Popen(
            cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait(lambda: self.get("/savi/stats") is not None, 30, "controller REST API")

    def restart_controller(self, down_seconds: float = 0.0) -> None:
        _stop(self.controller)
        time.sleep(down_seconds)
        self.start_controller()

    def stop_controller(self) -> None:
        _stop(self.controller)

    def get(self, path: str, timeout: float = 5):
        """GET a REST path and decode it; None if the controller does not answer."""
        try:
            with urllib.request.urlopen(self.rest_url + path, timeout=timeout) as r:
                return json.load(r)
        except OSError:
            return None

    def request(self, method: str, path: str, body: dict | None = None):
        """Any REST call; returns (status, decoded body)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.rest_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if method != "GET":
            req.add_header("Authorization", f"Bearer {self.token_file.read_text().strip()}")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    # -- waiting -------------------------------------------------------------------------
    def wait_for_flows(self, timeout: float = 30) -> None:
        """Until every SAVI switch has its per-port flows from the controller."""

        def ready() -> bool:
            for sw in self.savi_switches():
                flows = sw.dpctl("dump-flows", "-O", "OpenFlow13")
                ports = [p for p in sw.ports if p.name != "lo"]
                if flows.count("cookie=0x5b") < 5 + len(ports):
                    return False
            return True

        self._wait(ready, timeout, "controller flows in the SAVI switches")

    def _wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.controller is not None and self.controller.poll() is not None:
                raise TestbedError(
                    f"controller exited with {self.controller.returncode} while waiting for "
                    f"{what}; see {self.dir / 'controller.log'}"
                )
            if predicate():
                return
            time.sleep(0.05)
        raise TestbedError(f"timed out after {timeout}s waiting for {what}")

    # -- management network ----------------------------------------------------------------
    def management_hosts(self) -> set[str]:
        """Hosts linked to the management network: those that run agents, unless the
        topology names others (``management_hosts()``). Attackers get no link: they can
        neither read the API nor reach the controller at all."""
        if hasattr(self.topo, "management_hosts"):
            return set(self.topo.management_hosts())
        return set(self.topo.agent_hosts()) if hasattr(self.topo, "agent_hosts") else set()

    def _start_mgmt(self) -> None:
        ip = lambda *a: subprocess.run(["ip", *a], check=True, capture_output=True)  # noqa: E731
        subprocess.run(["ip", "link", "del", MGMT_BRIDGE], capture_output=True, check=False)
        ip("link", "add", MGMT_BRIDGE, "type", "bridge")
        ip("addr", "add", f"{MGMT_NET}.1/24", "dev", MGMT_BRIDGE)
        ip("link", "set", MGMT_BRIDGE, "up")
        for i, host in enumerate(self.net.hosts, start=2):
            if host.name not in self.management_hosts():
                continue
            outer, inner = f"mg{i}-{host.name}"[:15], f"{host.name}-mgmt"[:15]
            # Listed before it exists, so that a stop coming in between (SIGTERM while
            # the testbed starts) deletes it too; one of that name already here is a
            # dead run's (this run holds the machine's lock), and goes first, as the
            # bridge does. Deleting the outer end takes the inner one with it.
            self.mgmt_links.append(outer)
            subprocess.run(["ip", "link", "del", outer], capture_output=True, check=False)
            if getattr(host, "isRemote", False):
                self._remote_mgmt_link(host, outer, inner)
            else:
                ip("link", "add", outer, "type", "veth", "peer", "name", inner)
                ip("link", "set", inner, "netns", str(host.pid))
            ip("link", "set", outer, "master", MGMT_BRIDGE, "up")
            host.cmd(f"ip addr add {MGMT_NET}.{i}/24 dev {inner} && ip link set {inner} up")

    def _remote_mgmt_link(self, host, outer: str, inner: str) -> None:
        """A host on another server reaches the management bridge through a VXLAN
        tunnel of its own: ``outer`` here on the bridge, ``inner`` in the host."""
        vni = next(VxlanLink._vnis)
        # This machine's address toward that host's server (with three servers or more
        # the routes may differ), unless the cluster names one.
        here = self.cluster.controller_ip or source_address_toward(host.serverIP)
        vxlan = (
            f"mtu {CLUSTER_MTU} type vxlan id {vni} local {here} remote {host.serverIP} "
            f"dstport {VXLAN_PORT}"
        )
        subprocess.run(
            ["ip", "link", "add", outer, *vxlan.split()], check=True, capture_output=True
        )
        out = on_server(
            host,
            f"ip link add {inner} mtu {CLUSTER_MTU} type vxlan id {vni} local {host.serverIP} "
            f"remote {here} dstport {VXLAN_PORT} && ip link set {inner} netns {host.pid} "
            "&& echo made",
        )
        if not out.strip().endswith("made"):
            raise TestbedError(f"management tunnel for {host.name}: {out.strip()}")

    def cluster_address(self) -> str:
        """This machine's address as the other servers reach it (controller, management
        network, tunnels): the cluster's ``controller_ip`` or the route's source."""
        if self.cluster.controller_ip:
            return self.cluster.controller_ip
        second = (
            self.cluster.server_ips.get(self.cluster.servers[1])
            or self.net.serverIP[self.cluster.servers[1]]
        )
        return source_address_toward(second)

    # -- DHCP ------------------------------------------------------------------------------
    def start_dhcp_server(
        self, host, intf: str, first: str, last: str, lease: str = "2m", v6: tuple | None = None
    ):
        """dnsmasq as a DHCP server only (no DNS), leases kept in the run folder; with
        ``v6`` (interface, address/prefix length, first, last) a DHCPv6 server too, on an
        address of the range's prefix that the interface gets here."""
        leases = self.dir / f"{host.name}.leases"
        cmd = [
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            f"--interface={intf}",
            "--bind-interfaces",
            "--dhcp-authoritative",
            f"--dhcp-range={first},{last},255.255.255.0,{lease}",
            f"--dhcp-leasefile={leases}",
            "--log-dhcp",
            f"--pid-file={self.dir / host.name}.pid",
        ]
        if v6 is not None:
            _intf, address, first6, last6 = v6
            host.cmd(f"ip -6 addr add {address} dev {intf} nodad")
            prefix_len = address.split("/")[1]
            cmd.append(f"--dhcp-range={first6},{last6},{prefix_len},{lease}")
        return self.spawn(host, cmd, f"{host.name}-dnsmasq.log")

    def start_dhcp6_server(self, host, ranges: list[tuple[str, str, str]], lease: str = "1h"):
        """dnsmasq as a DHCPv6 server only, in ``host`` (a router), for each (interface,
        first, last) of ``ranges``: the interface already has an address in the range's
        /64, which tells dnsmasq where the range is served."""
        leases = self.dir / f"{host.name}.leases6"
        cmd = [
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            "--dhcp-authoritative",
            f"--dhcp-leasefile={leases}",
            "--log-dhcp",
            f"--pid-file={self.dir / host.name}.pid6",
        ]
        for intf, first, last in ranges:
            cmd += [f"--interface={intf}", f"--dhcp-range={first},{last},64,{lease}"]
        return self.spawn(host, cmd, f"{host.name}-dnsmasq6.log")

    def dhcp_client(self, host, intf: str | None = None, timeout: float = 20):
        """Run udhcpc in ``host`` until it has a lease; it keeps renewing in the background.

        SIGUSR2 makes it release the lease; on exit it releases too (-R).
        """
        intf = intf or host.defaultIntf().name
        cmd = ["udhcpc", "-f", "-R", "-i", intf, "-s", str(UDHCPC_SCRIPT), "-t", "20", "-T", "1"]
        proc = self.spawn(host, cmd, f"{host.name}-udhcpc.log")
        self.dhcp_clients[host.name] = proc
        self._wait(
            lambda: "inet " in host.cmd(f"ip -4 addr show dev {intf}"),
            timeout,
            f"a DHCP lease in {host.name}",
        )
        return proc

    def dhcp6_client(self, host, intf: str | None = None, timeout: float = 30):
        """Run ``dhclient -6`` in ``host`` until it has a global address; it renews in
        the background. dhcp6_release() releases the lease (RELEASE) and stops it."""
        intf = intf or host.defaultIntf().name
        # The link-local address the client speaks from must have passed DAD.
        self._wait(
            lambda: "tentative" not in host.cmd(f"ip -6 addr show dev {intf}"),
            timeout,
            f"{host.name}'s link-local address to leave DAD",
        )
        proc = self.spawn(
            host,
            ["dhclient", *self._dhclient6_args(host, intf), "-d", intf],
            f"{host.name}-dhclient6.log",
        )
        self.dhcp6_clients[host.name] = proc
        self._wait(
            lambda: dhcp6_address(host, intf) is not None, timeout, f"a DHCPv6 lease in {host.name}"
        )
        return proc

    def dhcp6_release(self, host, intf: str | None = None) -> None:
        """Release ``host``'s DHCPv6 lease (the client sends RELEASE and removes the
        address) and stop its client."""
        intf = intf or host.defaultIntf().name
        host.cmd(["dhclient", *self._dhclient6_args(host, intf), "-r", intf])
        proc = self.dhcp6_clients.pop(host.name, None)
        _stop(proc)

    def _dhclient6_args(self, host, intf: str) -> list[str]:
        files = self.dir / f"{host.name}-{intf}-dhclient6"
        options = f"-6 -v -lf {files}.leases -pf {files}.pid --address-prefix-len 64"
        return [*options.split(), "-sf", str(DHCLIENT6_SCRIPT)]

    # -- Trusted MPTCP agents ------------------------------------------------------------------
    def start_agents(
        self, hosts: list[str] | None = None, extra: list[str] | None = None, timeout: float = 20
    ) -> dict:
        """Start ``python -m hosts.agent`` in each multi-homed host of the topology (or in
        ``hosts``), wait until each has written its TPBT state; return host -> process."""
        started = {}
        for name, addrs in self.topo.agent_hosts().items():
            if hosts is not None and name not in hosts:
                continue
            cmd = [
                sys.executable,
                "-m",
                "hosts.agent",
                "--url",
                self.mgmt_url,
                "--pubkey-file",
                str(self.pubkey_file),
                "--state",
                str(self.state_file(name)),
            ]
            for addr in addrs:
                cmd += ["--addr", addr]
            self.state_file(name).unlink(missing_ok=True)
            started[name] = self.spawn(
                self.net[name], cmd + (extra or []), f"{name}-agent.log", cwd=REPO
            )
        for name, proc in started.items():
            self._wait(
                lambda n=name, p=proc: self.state_file(n).exists() or p.poll() is not None,
                timeout,
                f"the agent in {name}",
            )
            if proc.poll() is not None:
                raise TestbedError(
                    f"agent in {name} exited with {proc.returncode}; see "
                    f"{self.dir / (name + '-agent.log')}"
                )
        self.agents.update(started)
        return started

    def stop_agent(self, name: str) -> None:
        _stop(self.agents.pop(name, None))

    def state_file(self, host: str) -> Path:
        return self.dir / f"{host}.tpbt.json"

    def tpbt(self, host: str) -> dict:
        return json.loads(self.state_file(host).read_text())

    def spawn(self, host, cmd: list[str], log_name: str, **kw):
        log = open(self.dir / log_name, "ab")
        proc = host.popen(cmd, stdout=log, stderr=subprocess.STDOUT, **kw)
        log.close()
        self.daemons.append(proc)
        return proc


def dhcp6_address(host, intf: str) -> str | None:
    """The global IPv6 address DHCPv6 gave ``intf`` (one that has passed DAD), if any."""
    out = host.cmd(f"ip -6 -o addr show dev {intf} scope global")
    for line in out.splitlines():
        if "tentative" not in line and "inet6 " in line:
            return line.split("inet6 ")[1].split("/")[0]
    return None


def _stop(proc: subprocess.Popen | None, timeout: float = 5) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
