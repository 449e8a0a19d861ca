"""Veth links created together, and hosts configured together.

Mininet creates each veth pair with a command in one node's shell and brings each end up
with another (``ifconfig ... up``), about 9 ms a link: 3.7 s of a 400-host testbed's
start. Here a plain link of the topology (no address, MAC or ``ifconfig`` of its own;
not a TCLink) is only written down while the topology is built, and ``BatchedMininet``
creates all of them once every node exists: one ``ip -batch`` in the root namespace
creates every pair (each end straight into its node's namespace), one more brings up the
switches' ends. Other links, and links added after the build, go Mininet's way, at once.
Then every host's configuration command goes to all shells before any answer is read.
``mn --custom`` uses Mininet's own classes.
"""

from __future__ import annotations

import shlex
import subprocess

from mininet.link import Intf, Link
from mininet.net import Mininet

from topologies.nodes import RoutedHost

OWN_SETTINGS = ("ip", "mac", "ifconfig")  # an interface with these needs its device at once


class LinkBatchError(RuntimeError):
    pass


class BatchedIntf(Intf):
    """An interface of a batched link: it is brought up with its pair."""

    def config(self, mac=None, ip=None, ifconfig=None, up=True, **params):
        if getattr(self.link, "batched", False):
            up = None
        return super().config(mac=mac, ip=ip, ifconfig=ifconfig, up=up, **params)


class BatchedLink(Link):
    def __init__(self, node1, node2, params1=None, params2=None, **params):
        mine = [params1 or {}, params2 or {}, params]
        self.batched = not any(k in p for p in mine for k in OWN_SETTINGS)
        self.created = not self.batched
        if self.batched:
            params["intf"] = BatchedIntf
        super().__init__(node1, node2, params1=params1, params2=params2, **params)

    def makeIntfPair(
        self, intfname1, intfname2, addr1=None, addr2=None, node1=None, node2=None, deleteIntfs=True
    ):
        if not self.batched:
            return super().makeIntfPair(
                intfname1, intfname2, addr1, addr2, node1, node2, deleteIntfs
            )
        if node1 is None or node2 is None or deleteIntfs:
            raise LinkBatchError(f"{intfname1}-{intfname2}: a batched link needs both nodes")
        self.pair = (node1, intfname1, addr1, node2, intfname2, addr2)
        return None


def veth_commands(links: list[BatchedLink]) -> tuple[list[str], dict]:
    """``ip`` commands: those that create every pair (run in the root namespace, each end
    put straight into its node's namespace, the near end up), and per node those that
    bring up the far ends (the kernel takes ``up`` only for the near end of a new pair)."""
    create, far = [], {}
    for link in links:
        node1, name1, addr1, node2, name2, addr2 = link.pair
        mac1 = f" address {addr1}" if addr1 else ""
        mac2 = f" address {addr2}" if addr2 else ""
        create.append(
            f"link add name {name1}{mac1} up netns {node1.pid} "
            f"type veth peer name {name2}{mac2} netns {node2.pid}"
        )
        far.setdefault(node2, []).append(f"link set dev {name2} up")
    return create, far


def run_batch(commands: list[str], node=None) -> None:
    """``ip -batch`` of ``commands`` in ``node``'s shell, or (no node) in ours, in the
    root namespace."""
    if node is None:
        r = subprocess.run(
            ["ip", "-batch", "-"],
            input="\n".join(commands) + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0:
            raise LinkBatchError(f"creating links: {(r.stdout + r.stderr).strip()[-500:]}")
        return
    lines = " ".join(shlex.quote(c) for c in commands)
    out = node.cmd(f"printf '%s\\n' {lines} | ip -batch - 2>&1 && echo created")
    if not out.strip().endswith("created"):
        raise LinkBatchError(f"{node.name}: bringing links up: {out.strip()[-500:]}")


class BatchedMininet(Mininet):
    """Mininet whose topology's plain links are created together once its nodes exist
    (a link added later, by hand, is created at once, Mininet's way)."""

    def buildFromTopo(self, topo=None):
        default, self.link = self.link, BatchedLink if self.link is Link else self.link
        try:
            super().buildFromTopo(topo)
        finally:
            self.link = default
        waiting = [
            link for link in self.links if isinstance(link, BatchedLink) and not link.created
        ]
        if not waiting:
            return
        create, far = veth_commands(waiting)
        run_batch(create)
        in_root = [line for node, lines in far.items() if not node.inNamespace for line in lines]
        if in_root:  # the switches' ends: one batch for all of them
            run_batch(in_root)
        for node, lines in far.items():
            if node.inNamespace:
                run_batch(lines, node)
        for link in waiting:
            link.created = True

    def configHosts(self):
        """Every RoutedHost's one command sent to all of their shells first, the answers
        read after: the shells work at once instead of one round trip after another.
        Other hosts are configured Mininet's way."""
        sent = []
        for host in self.hosts:
            plan = None
            if isinstance(host, RoutedHost) and host.defaultIntf() is not None:
                plan = host.config_plan(**host.params)
            if plan is None:
                if host.defaultIntf():
                    host.configDefault()
                else:
                    host.configDefault(ip=None, mac=None)
                continue
            host.sendCmd(plan.command)
            sent.append((host, plan))
        for host, plan in sent:
            plan.finish(host.waitOutput())
