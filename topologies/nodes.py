"""Mininet node classes the topologies use: SAVI access switches, legacy switches, routers.

Switches use Open vSwitch's userspace datapath when the kernel module is missing (these
machines) and the kernel datapath where it exists (the Vagrant VM). SAVI switches run in
``secure`` fail mode: with the controller gone they keep their flows and send nothing
unknown anywhere, so spoofed traffic stays dropped (fail-secure).
"""

from __future__ import annotations

import functools
import os
import shlex
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from mininet.node import Host, Node, OVSSwitch, RemoteController


def ovs_datapath() -> str:
    """'user' without the openvswitch kernel module, else 'kernel' (Mininet's names)."""
    return "kernel" if os.path.isdir("/sys/module/openvswitch") else "user"


@functools.cache
def userspace_tso() -> bool:
    """Whether OVS runs its userspace datapath with TSO (``scripts/start-ovs.sh`` sets
    it before ovs-vswitchd starts, the only time it reads it; on unless
    ``OVS_USERSPACE_TSO=off``). Then the hosts keep their checksum and segmentation
    offloads; without it the
    userspace datapath would forward the hosts' unfinished checksums, so the builder
    turns their TX offload off."""
    if ovs_datapath() != "user":
        return False
    out = subprocess.run(
        ["ovs-vsctl", "--timeout=5", "get", "Open_vSwitch", ".", "other_config"],
        capture_output=True,
        text=True,
    )
    return tso_enabled(out.stdout)


def tso_enabled(other_config: str) -> bool:
    """Whether ``ovs-vsctl get Open_vSwitch . other_config`` says userspace TSO is on."""
    return (
        'userspace-tso-enable="true"' in other_config or "userspace-tso-enable=true" in other_config
    )


@dataclass(frozen=True)
class OvsMode:
    """How a server's OVS forwards; two servers of one testbed must agree (the hosts'
    offloads and the routers' MTUs follow from it). TSO counts only in userspace."""

    datapath: str  # "user" or "kernel" (Mininet's names)
    tso: bool

    @classmethod
    def of(cls, datapath: str, tso: bool) -> OvsMode:
        return cls(datapath, tso and datapath == "user")

    def __str__(self) -> str:
        if self.datapath == "user":
            return f"userspace datapath, userspace TSO {'on' if self.tso else 'off'}"
        return f"{self.datapath} datapath"


# OVS before 3.3 (Debian 12 has 3.1) cuts the TSO packets it sends into segments of
# MTU - 54 bytes of payload, as if every TCP header were 20 bytes (fixed upstream by
# e0056018c, "userspace: Respect tso/gso segment size"). With TCP options (MPTCP's DSS,
# SACK) such a segment is up to 40 bytes over the MTU; a host takes it, but a Linux
# router refuses to forward it (IpFragFails, ICMP "fragmentation needed") and MPTCP
# through a router falls to kbit/s. Routers get this much headroom on their links
# (docs/line-rate.md, tools/ovs-tso-mtu-repro.sh).
ROUTER_TSO_MTU_HEADROOM = 40


class OpenFlowController(RemoteController):
    """A controller already running at ip:port (the SAVI app, simple_switch_13).

    Mininet's RemoteController probes the port with telnet and decodes what comes back
    as UTF-8; an OpenFlow controller answers with its binary hello, so that decode fails
    now and then (UnicodeDecodeError; seen in the suite and in the benchmarks). A plain
    connect says the same without reading anything."""

    def checkListening(self):
        try:
            with socket.create_connection((self.ip, self.port), timeout=5):
                pass
        except OSError as e:
            raise RuntimeError(f"no controller listens at {self.ip}:{self.port}: {e}") from None

    def stop(self, *args, **kwargs):
        """End this node's shell. Mininet's RemoteController.stop() does nothing and
        Mininet.stop() never terminates a controller, so every testbed left its shell (a
        bash) behind until the Python process ended: 59 by the end of the test suite.
        The controller itself is not ours to stop here (the testbed stops it)."""
        self.terminate()


class OpenFlow13Switch(OVSSwitch):
    """An OVS bridge on this machine's datapath, OpenFlow 1.3, fail-secure: what only
    its controller's flows let through passes."""

    def __init__(self, name, **params):
        params.setdefault("datapath", ovs_datapath())
        params.setdefault("failMode", "secure")
        params.setdefault("protocols", "OpenFlow13")
        super().__init__(name, **params)


class SaviSwitch(OpenFlow13Switch):
    """An access switch controlled by the SAVI app over OpenFlow 1.3."""


class LegacySwitch(OVSSwitch):
    """A plain learning switch with no SAVI: the unprotected access networks."""

    def __init__(self, name, **params):
        params.setdefault("datapath", ovs_datapath())
        params["failMode"] = "standalone"
        super().__init__(name, **params)

    def start(self, controllers):
        super().start(controllers=[])


def apply_routing(node: Node, routing: list[str]) -> None:
    """Run each ``ip`` command of ``routing`` (for example ``route add default via
    10.1.0.1``) in ``node``; a refused one stops the build with the kernel's words."""
    for command in routing:
        out = node.cmd(f"ip {command} 2>&1 && echo routed")
        if not out.strip().endswith("routed"):
            raise RuntimeError(f"{node.name}: ip {command}: {out.strip()}")


class RoutedHost(Host):
    """A host whose routes are part of the topology (``routing``: ``ip`` commands), so
    they are there however the network is built: ``mn --custom`` never calls a
    topology's ``configure()``, only the nodes' ``config()``."""

    def config(self, routing: list[str] = (), mac=None, ip=None, lo="up", **params):
        """MAC, address, loopback and routes in one command in the node's shell: Mininet's
        own config takes six round trips (three for the MAC alone), most of a large
        testbed's start. Anything else it takes (a default route, ...) goes its way."""
        plan = self.config_plan(routing, mac=mac, ip=ip, lo=lo, **params)
        if plan is None:
            result = super().config(mac=mac, ip=ip, lo=lo, **params)
            apply_routing(self, routing)
            return result
        plan.finish(self.cmd(plan.command))
        return {}

    def config_plan(
        self, routing: list[str] = (), mac=None, ip=None, lo="up", **params
    ) -> HostConfigPlan | None:
        """The one shell command of ``config`` and what to record once it has run (so
        BatchedMininet can send every host's at once and then read the answers); None
        when the host needs Mininet's own config."""
        intf = self.defaultIntf()
        if params or intf is None:
            return None
        steps = []  # `ip` commands, run by one `ip -batch`: a process per command is the cost
        if mac:
            steps += [f"link set dev {intf} {step}" for step in ("down", f"address {mac}", "up")]
        addr, plen = None, None
        if ip:
            addr, _, plen = ip.partition("/")
            plen = plen or "8"  # Mininet's default prefix length
            steps.append(f"addr replace {addr}/{plen} dev {intf}")  # no error if already there
        steps.append(f"link set dev lo {lo}")
        steps += list(routing)
        lines = " ".join(shlex.quote(step) for step in steps)

        def finish(out: str) -> None:
            if not out.strip().endswith("configured"):
                raise RuntimeError(f"{self.name}: configuring {intf}: {out.strip()}")
            if mac:
                intf.mac = mac
            if ip:
                intf.ip, intf.prefixLen = addr, int(plen)

        return HostConfigPlan(
            f"printf '%s\\n' {lines} | ip -batch - 2>&1 && echo configured", finish
        )


@dataclass(frozen=True)
class HostConfigPlan:
    command: str
    finish: Callable[[str], None]


class Router(Node):
    """A Linux router between the access networks (forwarding on, no SAV of its own;
    static routes from ``routing``, as in RoutedHost)."""

    def config(self, routing: list[str] = (), **params):
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
        self.cmd("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
        apply_routing(self, routing)
        if userspace_tso():
            names = " ".join(intf.name for intf in self.intfList() if intf.name != "lo")
            headroom = ROUTER_TSO_MTU_HEADROOM
            self.cmd(
                f"for i in {names}; do"
                f" ip link set dev $i mtu $(($(cat /sys/class/net/$i/mtu) + {headroom})); done"
            )
        return result

    def terminate(self):
        self.cmd("sysctl -qw net.ipv4.ip_forward=0")
        super().terminate()
