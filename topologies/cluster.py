"""Cluster mode: one testbed spread over several servers with Mininet Cluster Edition.

Mininet's ``mininet.examples.cluster`` runs a node on another server through ssh (its
shell is ``ssh root@server sudo mnexec ...``), starts remote switches in that server's
Open vSwitch, and joins nodes on different servers with tunnels. This module adds what
the testbed needs on top of it and nothing more:

- node classes for our own (``cluster_class``): a SAVI switch, a legacy switch, a routed
  host or a router that may live on another server;
- ``VxlanLink``: a link between servers as a pair of VXLAN devices, one per server, each
  moved into its node. Mininet's own GRE and ssh-tap links need the kernel's GRE module
  (missing here) or a fixed ``tap9`` name per server; VXLAN is in every kernel we run on;
- ``RemoteProcess``: a process started in a remote node, stopped by its own PID on its
  server (killing the local ssh client would leave it running there);
- ``ClusterNet``: MininetCluster with an ssh configuration file of our own (keys, known
  hosts), a precheck that raises instead of exiting, and placement by name.

On real machines every server needs: root ssh by key from the first server, Open vSwitch
running, this repository and its ``.venv`` at the same path, and the run folder at the
same path on a shared mount (the agents write their state files there). The first server
runs the SAVI controller; the others' switches reach it at ``controller_ip``.
"""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from pathlib import Path

from mininet.examples.cluster import (
    MininetCluster,
    RemoteLink,
    RemoteMixin,
    RemoteOVSSwitch,
    RoundRobinPlacer,
    SwitchBinPlacer,
)
from mininet.link import Link
from mininet.node import Node, OVSSwitch

from topologies.nodes import (
    LegacySwitch,
    OvsMode,
    RoutedHost,
    Router,
    SaviSwitch,
    ovs_datapath,
    tso_enabled,
    userspace_tso,
)

REPO = Path(__file__).resolve().parent.parent
# Where the nodes go: switches in even bins with their hosts beside them (Mininet's
# SwitchBinPlacer), or every node in turn (round robin: most links cross servers).
PLACEMENTS = {"switch-bin": SwitchBinPlacer, "round-robin": RoundRobinPlacer}
VXLAN_PORT = 4789
# A VXLAN frame carries 50 bytes of headers; on a 1500-byte underlay the emulated links
# get 1450, all of them, so that no path through a tunnel drops full-size frames.
CLUSTER_MTU = 1450


class ClusterError(RuntimeError):
    pass


@dataclass(frozen=True)
class Cluster:
    """Where a testbed runs: ``servers`` (the first is this machine, ``localhost``), the
    placement strategy (PLACEMENTS), an ssh configuration file for root logins to the
    others (None: root's own ~/.ssh/config), and the address the others reach this
    machine's controller and management network at (None: this machine's source address
    toward the second server)."""

    servers: tuple[str, ...]
    placement: str = "switch-bin"
    ssh_config: Path | None = None
    controller_ip: str | None = None
    server_ips: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if len(self.servers) < 2:
            raise ClusterError("cluster mode needs two servers or more (localhost first)")
        if self.servers[0] != "localhost":
            raise ClusterError(
                f"the first server is this machine and must be named localhost, not "
                f"{self.servers[0]!r}"
            )
        if len(set(self.servers)) != len(self.servers):
            raise ClusterError(f"a server is named twice: {', '.join(self.servers)}")
        if self.placement not in PLACEMENTS:
            raise ClusterError(
                f"placement must be one of {', '.join(PLACEMENTS)}, not {self.placement!r}"
            )
        if self.ssh_config is not None and not Path(self.ssh_config).is_file():
            raise ClusterError(f"ssh configuration file {self.ssh_config} does not exist")

    @classmethod
    def parse(cls, servers: str, **kwargs) -> Cluster:
        """``--servers localhost,10.0.0.2``."""
        names = tuple(s.strip() for s in servers.split(",") if s.strip())
        return cls(servers=names, **kwargs)

    def ssh_options(self) -> list[str]:
        return ["-F", str(self.ssh_config)] if self.ssh_config else []


def source_address_toward(ip: str) -> str:
    """This machine's source address for packets to ``ip`` (the kernel's route)."""
    out = subprocess.run(["ip", "-o", "route", "get", ip], capture_output=True, text=True)
    words = out.stdout.split()
    if out.returncode != 0 or "src" not in words:
        raise ClusterError(f"no route from this machine to server {ip}: {out.stderr.strip()}")
    return words[words.index("src") + 1]


def on_server(node, script: str) -> str:
    """Run a shell script in the root namespace of ``node``'s server; its output."""
    # One list argument: rcmd's own *args are (cmd, sudo, tt).
    return node.rcmd(["sh", "-c", shlex.quote(script) if node.isRemote else script])


class RemoteProcess:
    """A process in a node on another server, seen through its ssh client (a Popen):
    output, exit status and wait come from the client; signals go to the process itself,
    by the PID it wrote on its server."""

    def __init__(self, client: subprocess.Popen, node, pidfile: str):
        self.client, self.node, self.pidfile = client, node, pidfile

    def __getattr__(self, name):
        return getattr(self.client, name)

    def send_signal(self, sig: int) -> None:
        if self.client.poll() is None:
            on_server(
                self.node,
                f'pid=$(cat {self.pidfile} 2>/dev/null) && kill -{int(sig)} "$pid" 2>/dev/null',
            )

    def terminate(self) -> None:
        self.send_signal(15)

    def kill(self) -> None:
        self.send_signal(9)
        if self.client.poll() is None:
            self.client.kill()

    def wait(self, timeout: float | None = None) -> int:
        code = self.client.wait(timeout)
        self._forget()
        return code

    def communicate(self, *args, **kwargs):
        out = self.client.communicate(*args, **kwargs)
        self._forget()
        return out

    def _forget(self) -> None:
        if self.pidfile:
            on_server(self.node, f"rm -f {self.pidfile}")
            self.pidfile = ""


class ClusterMixin(RemoteMixin):
    """RemoteMixin with our ssh options, and a popen for remote nodes that keeps each
    argument whole (ssh joins them into one line for the remote shell), finds this
    repository's modules and the working folder there, and can be stopped by PID."""

    def __init__(self, name, ssh_options: list[str] | None = None, **kwargs):
        self.sshbase = ["ssh", *(ssh_options or []), "-q", "-o", "BatchMode=yes", "-tt"]
        super().__init__(name, **kwargs)

    def _popen(self, cmd, sudo=True, tt=True, **params):
        """On this machine, Mininet's own (RemoteMixin would put the process in a
        process group of its own, and ``mnexec -d`` then forks and its parent exits at
        once: Popen would see every local process end with 0 as soon as it starts)."""
        if not self.isRemote:
            return Node._popen(self, cmd.split() if isinstance(cmd, str) else cmd, **params)
        return super()._popen(cmd, sudo=sudo, tt=tt, **params)

    def popen(self, *args, **kwargs):
        if not self.isRemote:
            return Node.popen(self, *args, **kwargs)
        cmd = args[0] if len(args) == 1 else list(args)
        cmd = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]
        cwd = str(kwargs.pop("cwd", None) or "/")
        pidfile = f"/tmp/tmptcp-{self.name}-{uuid.uuid4().hex[:12]}.pid"
        script = 'echo $$ > "$0" && cd "$1" && shift 2 && exec "$@"'
        wrapped = ["env", f"PYTHONPATH={REPO}", "sh", "-c", script, pidfile, cwd, "-", *cmd]
        # No `mnexec -d` there either: ssh would report the detached parent's status.
        kwargs.setdefault("mncmd", ["mnexec", "-a", str(self.pid)])
        client = super().popen([shlex.quote(a) for a in wrapped], **kwargs)
        return RemoteProcess(client, self, pidfile)

    @staticmethod
    def _ignoreSignal():
        """Mininet's (a process group of its own, away from Ctrl-C), and SIGHUP at its
        default: started under nohup, ssh would keep ignoring it, and Mininet stops a
        remote node's shell (an ssh client) with SIGHUP; the stop would wait forever."""
        os.setpgrp()
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


class ClusterRoutedHost(ClusterMixin, RoutedHost):
    pass


class ClusterRouter(ClusterMixin, Router):
    pass


class ClusterSwitchMixin:
    """Switches started per server with one ovs-vsctl each, as a plain ssh command.
    Cluster Edition types the batch into the remote switch's shell, through the remote
    pty, whose line discipline cuts a line at 4,095 bytes: a campus's add-port lists are
    longer, and the bridges past the cut silently never came."""

    @classmethod
    def batchStartup(cls, switches, **_kwargs):
        by_server = attrgetter("server")
        for _server, group in groupby(sorted(switches, key=by_server), by_server):
            group = tuple(group)
            OVSSwitch.batchStartup(group, run=lambda cmds, node=group[0], **kw: _vsctl(node, cmds))
        return switches


def _vsctl(node, cmds: str) -> None:
    out = on_server(node, f"{cmds} 2>&1 && echo vsctl-done")
    if not out.strip().endswith("vsctl-done"):
        raise ClusterError(f"starting switches on {node.server}: {out.strip()[-500:]}")


class ClusterSaviSwitch(ClusterSwitchMixin, ClusterMixin, RemoteOVSSwitch, SaviSwitch):
    pass


class ClusterLegacySwitch(ClusterSwitchMixin, ClusterMixin, RemoteOVSSwitch, LegacySwitch):
    pass


CLUSTER_CLASSES = {
    RoutedHost: ClusterRoutedHost,
    Router: ClusterRouter,
    SaviSwitch: ClusterSaviSwitch,
    LegacySwitch: ClusterLegacySwitch,
}


def cluster_class(cls):
    """The cluster variant of one of our node classes; a ClusterError for any other
    (a node class we have not made remote would silently run on this machine)."""
    if cls in CLUSTER_CLASSES.values():
        return cls
    try:
        return CLUSTER_CLASSES[cls]
    except KeyError:
        names = ", ".join(c.__name__ for c in CLUSTER_CLASSES)
        raise ClusterError(f"no cluster variant of {cls!r}; cluster mode takes {names}") from None


class VxlanLink(RemoteLink):
    """A link inside one server is a veth pair; between servers, two VXLAN devices (one
    network identifier per link) made in each server's root namespace and moved into the
    nodes. Every end gets CLUSTER_MTU."""

    _vnis = itertools.count(4200)

    def makeIntfPair(
        self, intfname1, intfname2, addr1=None, addr2=None, node1=None, node2=None, deleteIntfs=True
    ):
        node1 = self.node1 if node1 is None else node1
        node2 = self.node2 if node2 is None else node2
        if node1.server == node2.server:
            Link.makeIntfPair(
                intfname1, intfname2, addr1, addr2, node1, node2, deleteIntfs=deleteIntfs
            )
            for node, name in ((node1, intfname1), (node2, intfname2)):
                node.cmd(f"ip link set dev {name} mtu {CLUSTER_MTU}")
            return None
        vni = next(self._vnis)
        ends = ((node1, intfname1, addr1, node2), (node2, intfname2, addr2, node1))
        for node, name, addr, peer in ends:
            local = node.serverIP if node.isRemote else source_address_toward(peer.serverIP)
            remote = peer.serverIP if peer.isRemote else source_address_toward(node.serverIP)
            mac = f" address {addr}" if addr else ""
            out = on_server(
                node,
                f"ip link del {name} 2>/dev/null; "
                f"ip link add name {name}{mac} mtu {CLUSTER_MTU} type vxlan id {vni} "
                f"local {local} remote {remote} dstport {VXLAN_PORT} && "
                f"ip link set {name} netns {node.pid} && echo made",
            )
            if not out.strip().endswith("made"):
                raise ClusterError(
                    f"VXLAN end {name} on {node.server} (for {node.name}): {out.strip()}"
                )
            node.cmd(f"ip link set {name} up")
        self.tunnel = vni
        return None

    def stop(self):
        if self.tunnel is not None:
            self.intf1.delete()
            self.intf2.delete()
            self.tunnel = None
        else:
            Link.stop(self)


class ClusterNet(MininetCluster):
    """MininetCluster with ``cluster``'s ssh options and placement, our node classes made
    remote, VXLAN links between servers, and a precheck that raises ClusterError."""

    def __init__(self, cluster: Cluster, **params):
        self.cluster = cluster
        self.sshcmd = ["ssh", *cluster.ssh_options(), "-o", "BatchMode=yes"]
        server_ips = {"localhost": "127.0.0.1"} | dict(cluster.server_ips)
        for server in cluster.servers[1:]:
            server_ips.setdefault(server, RemoteMixin.findServerIP(server))
            if server_ips[server] is None:
                raise ClusterError(f"server {server!r}: no IPv4 address for this name")
        self.check_servers(cluster, server_ips)
        # MininetCluster makes ~/.ssh/mn for ssh control sockets, which we do not use
        # (and ~/.ssh with it, world-readable, if there was none): stop() takes away
        # what it made, when empty.
        home_ssh = Path(os.environ.get("HOME", "/root")) / ".ssh"
        self.made_dirs = [d for d in (home_ssh, home_ssh / "mn") if not d.exists()]
        super().__init__(
            servers=list(cluster.servers),
            serverIP=server_ips,
            user="root",
            placement=PLACEMENTS[cluster.placement],
            precheck=False,
            link=VxlanLink,
            **params,
        )

    def stop(self):
        try:
            super().stop()
        finally:
            for folder in reversed(self.made_dirs):
                try:
                    folder.rmdir()
                except OSError:
                    pass  # something was put there since: no longer only ours

    def check_servers(self, cluster: Cluster, server_ips: dict[str, str]) -> None:
        """Each server takes a root login by key, has sudo, mnexec and Open vSwitch, in
        this machine's mode (the hosts' offloads and routers' MTUs are chosen here for all:
        a server whose OVS forwards otherwise would get hosts whose checksums and
        64-KB segments its switches cannot carry)."""
        here = OvsMode.of(ovs_datapath(), userspace_tso())
        for server in cluster.servers[1:]:
            cmd = [*self.sshcmd, "-n", f"root@{server_ips[server]}"]
            check = (
                "sudo -n true && command -v mnexec >/dev/null && ovs-vsctl --timeout=5 show "
                ">/dev/null && { test -d /sys/module/openvswitch && echo kernel || echo user; } "
                "&& ovs-vsctl --timeout=5 get Open_vSwitch . other_config"
            )
            r = subprocess.run([*cmd, check], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise ClusterError(
                    f"server {server}: `{' '.join(cmd)} '{check}'` failed "
                    f"({r.returncode}): {(r.stderr or r.stdout).strip()[:300]}; it needs a "
                    "root ssh login by key, sudo, mnexec (Debian's mininet) and a running "
                    "Open vSwitch"
                )
            datapath, _, other_config = r.stdout.strip().partition("\n")
            there = OvsMode.of(datapath.strip(), tso_enabled(other_config))
            if there != here:
                raise ClusterError(
                    f"server {server}: Open vSwitch runs with {there}, this machine's with "
                    f"{here}; start both alike (OVS_USERSPACE_TSO=on|off scripts/start-ovs.sh, "
                    "docs/line-rate.md)"
                )

    def placeNodes(self):
        super().placeNodes()
        options = self.cluster.ssh_options()
        for node in self.topo.nodes():
            info = self.topo.nodeInfo(node)
            default = self.switch if self.topo.isSwitch(node) else self.host
            info["cls"] = cluster_class(info.get("cls", default))
            info["ssh_options"] = options
            # Root on every server, also under sudo (Mininet would take SUDO_USER's name).
            info["user"] = self.user

    def placement_of(self) -> dict[str, str]:
        """Node name -> server."""
        return {node.name: node.server for node in self.hosts + self.switches}
