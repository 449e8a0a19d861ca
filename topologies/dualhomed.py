"""The default scenario: a dual-homed client and server, one path protected by SAVI.

::

          10.1.0.0/24 (SAVI s1)              10.3.0.0/24 (SAVI s3)
    a-eth0 .10 ---- s1 ---- r1 (.1) ------------- s3 ---- b-eth0 .20
    m1 .66 (attacker) /      | 10.9.0.0/30
                             |
    a-eth1 .10 ---- s2 ---- r2 (.1) ------------- s4 ---- b-eth1 .20
    m2 .66 (attacker)  10.2.0.0/24 (legacy s2)   10.4.0.0/24 (legacy s4)

Host ``a`` (client) and host ``b`` (server) each have one address behind a SAVI access
switch (trusted) and one behind a legacy switch (untrusted). Routers ``r1`` and ``r2``
join the networks; each host routes by source address, so every address pair is a path.
Attackers ``m1`` and ``m2`` sit on the protected and the unprotected access network.
"""

from __future__ import annotations

import inspect
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if not globals().get("__package__"):
    # Loaded by `mn --custom FILE`, which execs the file without __file__ or a package:
    # put the repository (two levels above this file) on the path for our imports.
    here = Path(inspect.currentframe().f_code.co_filename).resolve()
    sys.path.insert(0, str(here.parent.parent))

from mininet.link import TCLink
from mininet.topo import Topo

from topologies.nodes import LegacySwitch, RoutedHost, Router, SaviSwitch

if not globals().get("__package__"):
    # mn needs the SAVI controller: say so now rather than wait forever.
    from topologies import mn as mn_support

    mn_support.preflight("dualhomed", "topologies/dualhomed.py")
    controllers = mn_support.controllers()  # `--controller savi`: mn starts it

UPLINK_PORT = 10
A_TRUSTED, A_UNTRUSTED = "10.1.0.10", "10.2.0.10"
B_TRUSTED, B_UNTRUSTED = "10.3.0.20", "10.4.0.20"
M1, M2 = "10.1.0.66", "10.2.0.66"
# Dual stack (``ipv6=True``): network N of 10.N.0.0/24 is also 2001:db8:N::/64, with the
# same host numbers; the routers' link is 2001:db8:9::/64.
A6_TRUSTED, A6_UNTRUSTED = "2001:db8:1::10", "2001:db8:2::10"
B6_TRUSTED, B6_UNTRUSTED = "2001:db8:3::20", "2001:db8:4::20"
M1_6, M2_6 = "2001:db8:1::66", "2001:db8:2::66"


@dataclass(frozen=True)
class AddressPlan:
    """One family's addresses of the scenario: a's and b's (protected first), the
    attackers', and a's gateway on its protected network."""

    a: tuple[str, str]
    b: tuple[str, str]
    m1: str
    m2: str
    a_gateway: str


PLANS = {
    "v4": AddressPlan((A_TRUSTED, A_UNTRUSTED), (B_TRUSTED, B_UNTRUSTED), M1, M2, "10.1.0.1"),
    "v6": AddressPlan(
        (A6_TRUSTED, A6_UNTRUSTED), (B6_TRUSTED, B6_UNTRUSTED), M1_6, M2_6, "2001:db8:1::1"
    ),
}
# The routers' interfaces in the order build() links them, with their IPv6 addresses.
ROUTER_V6 = {
    "r1": {"r1-eth0": "2001:db8:1::1", "r1-eth1": "2001:db8:3::1", "r1-eth2": "2001:db8:9::1"},
    "r2": {"r2-eth0": "2001:db8:2::1", "r2-eth1": "2001:db8:4::1", "r2-eth2": "2001:db8:9::2"},
}


# Heterogeneous paths (needs netem: the Vagrant VM, not these CI machines). RTTs are
# split over the two access links of a path, so each gets a quarter of the RTT each way.
HETERO_PATHS = {
    "trusted": {"rtt_ms": 10},
    "untrusted": {"rtt_ms": 50, "loss_pct": 1},
}


def link_params(path: dict | None) -> dict:
    """Mininet TCLink options for one access link of a path with ``rtt_ms``/``loss_pct``."""
    if not path:
        return {}
    unknown = set(path) - {"rtt_ms", "loss_pct"}
    if unknown:
        raise ValueError(f"unknown path parameters {sorted(unknown)}; use rtt_ms, loss_pct")
    params = {"cls": TCLink}
    if path.get("rtt_ms"):
        params["delay"] = f"{path['rtt_ms'] / 4:g}ms"
    if path.get("loss_pct"):
        # Loss applies in each direction of both access links; split it so the path's
        # one-way loss is about loss_pct.
        params["loss"] = path["loss_pct"] / 2
    return params


def source_routing(host: str, *pairs: tuple[str, str]) -> list[str]:
    """``ip`` commands for a host whose interface N has the (address, gateway) pair N:
    one table per address, a rule that picks it by source address, and the first
    pair's gateway as the default."""
    routing = []
    for table, (addr, gateway) in enumerate(pairs, start=1):
        routing += [
            f"route add default via {gateway} dev {host}-eth{table - 1} table {table}",
            f"rule add from {addr} table {table}",
        ]
    return routing + [f"route add default via {pairs[0][1]} dev {host}-eth0"]


# Source address validation coverage, the experiments' first dimension:
#   none          the SAVI switches validate nothing (every port trusted): no address is
#                 protected, so no host address is trusted either;
#   savi          SAVI on the access switches s1 and s3 (the default);
#   savi+ingress  and ingress filtering (strict reverse-path filtering) in the routers.
COVERAGES = ("none", "savi", "savi+ingress")
MAX_EXTRA_HOSTS = 400  # 100 per access network (addresses .100 to .199)


class DualHomedTopo(Topo):
    """``paths``: optional ``{"trusted": {...}, "untrusted": {...}}`` with ``rtt_ms`` and
    ``loss_pct`` per path (see HETERO_PATHS); the builder refuses them without netem.
    ``coverage``: one of COVERAGES. ``ipv6``: dual stack, every host and router also has
    an IPv6 address on each network (static, bound by SAVI through the host's DAD) and
    the hosts route both families by source address."""

    def build(
        self,
        paths: dict | None = None,
        coverage: str = "savi",
        extra_hosts: int = 0,
        ipv6: bool = False,
    ):
        if coverage not in COVERAGES:
            raise ValueError(f"unknown coverage {coverage!r}; use one of {', '.join(COVERAGES)}")
        if not 0 <= extra_hosts <= MAX_EXTRA_HOSTS:
            raise ValueError(f"extra_hosts must be 0..{MAX_EXTRA_HOSTS}, not {extra_hosts}")
        self.coverage = coverage
        self.ipv6 = ipv6
        paths = paths or {}
        unknown = set(paths) - {"trusted", "untrusted"}
        if unknown:
            raise ValueError(f"unknown paths {sorted(unknown)}; use trusted, untrusted")
        trusted, untrusted = link_params(paths.get("trusted")), link_params(paths.get("untrusted"))
        s1 = self.addSwitch("s1", cls=SaviSwitch, dpid="0000000000000001")
        s2 = self.addSwitch("s2", cls=LegacySwitch, dpid="0000000000000002")
        s3 = self.addSwitch("s3", cls=SaviSwitch, dpid="0000000000000003")
        s4 = self.addSwitch("s4", cls=LegacySwitch, dpid="0000000000000004")
        # Routes belong to the nodes (RoutedHost, Router), so `mn --custom` has them too.
        r1_routes = ["route add 10.2.0.0/24 via 10.9.0.2", "route add 10.4.0.0/24 via 10.9.0.2"]
        r2_routes = ["route add 10.1.0.0/24 via 10.9.0.1", "route add 10.3.0.0/24 via 10.9.0.1"]
        r1 = self.addNode("r1", cls=Router, ip="10.1.0.1/24", routing=r1_routes)
        r2 = self.addNode("r2", cls=Router, ip="10.2.0.1/24", routing=r2_routes)
        a_routes = source_routing("a", (A_TRUSTED, "10.1.0.1"), (A_UNTRUSTED, "10.2.0.1"))
        b_routes = source_routing("b", (B_TRUSTED, "10.3.0.1"), (B_UNTRUSTED, "10.4.0.1"))
        a = self.addHost(
            "a", cls=RoutedHost, ip=f"{A_TRUSTED}/24", routing=a_routes, mac="00:00:00:00:0a:01"
        )
        b = self.addHost(
            "b", cls=RoutedHost, ip=f"{B_TRUSTED}/24", routing=b_routes, mac="00:00:00:00:0b:01"
        )
        m1, m2 = (
            self.addHost(
                name,
                cls=RoutedHost,
                ip=f"{ip}/24",
                mac=f"00:00:00:00:66:0{n}",
                routing=[f"route add default via 10.{n}.0.1"],
            )
            for n, (name, ip) in enumerate((("m1", M1), ("m2", M2)), start=1)
        )
        self.addLink(a, s1, port2=1, **trusted)
        self.addLink(a, s2, port2=1, params1={"ip": f"{A_UNTRUSTED}/24"}, **untrusted)
        self.addLink(m1, s1, port2=2)
        self.addLink(m2, s2, port2=2)
        self.addLink(b, s3, port2=1, **trusted)
        self.addLink(b, s4, port2=1, params1={"ip": f"{B_UNTRUSTED}/24"}, **untrusted)
        self.addLink(r1, s1, port2=UPLINK_PORT)
        self.addLink(r2, s2, port2=UPLINK_PORT, params1={"ip": "10.2.0.1/24"})
        self.addLink(r1, s3, port2=UPLINK_PORT, params1={"ip": "10.3.0.1/24"})
        self.addLink(r2, s4, port2=UPLINK_PORT, params1={"ip": "10.4.0.1/24"})
        self.addLink(r1, r2, params1={"ip": "10.9.0.1/30"}, params2={"ip": "10.9.0.2/30"})
        # The scenario widened (benchmarks of scale): single-homed hosts spread over the
        # four access networks, from .100 up, on ports 20 and up.
        self.extra_hosts = []
        for i in range(extra_hosts):
            net, switch = i % 4, (s1, s2, s3, s4)[i % 4]
            n = i // 4
            name = self.addHost(
                f"h{i + 1}",
                cls=RoutedHost,
                ip=f"10.{net + 1}.0.{100 + n}/24",
                mac=f"00:00:00:01:{net:02x}:{n:02x}",
                routing=[f"route add default via 10.{net + 1}.0.1"],
            )
            self.addLink(name, switch, port2=20 + n)
            self.extra_hosts.append(name)
        self.dhcp_clients: list[str] = []
        # Dual stack: a and b lease their protected IPv6 address (on eth0) by DHCPv6.
        self.dhcp6_clients: list[str] = ["a", "b"] if ipv6 else []

    def savi_config(self) -> dict:
        if self.coverage == "none":  # the switches stay in the path but validate nothing
            return {
                "switch": [
                    {"dpid": 1, "trusted_ports": [1, 2, UPLINK_PORT]},
                    {"dpid": 3, "trusted_ports": [1, UPLINK_PORT]},
                ]
            }
        return {
            "switch": [
                {"dpid": 1, "trusted_ports": [UPLINK_PORT]},
                {"dpid": 3, "trusted_ports": [UPLINK_PORT]},
            ]
        }

    def dhcp_servers(self) -> dict:
        return {}

    def dhcp6_servers(self) -> dict:
        """Dual stack: r1 serves a's and b's protected networks by DHCPv6, one address
        each (the plan's), so a lease always gives the same address."""
        if not self.ipv6:
            return {}
        return {"r1": [("r1-eth0", A6_TRUSTED, A6_TRUSTED), ("r1-eth1", B6_TRUSTED, B6_TRUSTED)]}

    def agent_hosts(self) -> dict[str, list[str]]:
        """Hosts that run the Trusted MPTCP agent, with their addresses (trusted first,
        IPv4 before IPv6: the first gets ID 1)."""
        if self.ipv6:
            return {
                "a": [A_TRUSTED, A_UNTRUSTED, A6_TRUSTED, A6_UNTRUSTED],
                "b": [B_TRUSTED, B_UNTRUSTED, B6_TRUSTED, B6_UNTRUSTED],
            }
        return {"a": [A_TRUSTED, A_UNTRUSTED], "b": [B_TRUSTED, B_UNTRUSTED]}

    def configure(self, net) -> None:
        """After start (the builder's; IPv4 routes are the nodes' own): BCP 38 at the
        borders for ``savi+ingress``, and IPv6."""
        if self.coverage == "savi+ingress":
            # BCP 38 at the borders: a router takes a packet only from the interface it
            # would use to reach the packet's source.
            for router in (net["r1"], net["r2"]):
                router.cmd("sysctl -qw net.ipv4.conf.all.rp_filter=1")
        if self.ipv6:
            self.configure_ipv6(net)

    def configure_ipv6(self, net) -> None:
        """The same plan in IPv6. On the protected networks a and b lease their address
        from r1's DHCPv6 server (the builder starts it and the clients after this): SAVI
        binds it from the snooped REPLY. The other host addresses are static and go
        through DAD, whose neighbour solicitation binds them at a SAVI switch (m1's);
        routers' addresses (on uplink ports) skip it. Returns once no static address is
        tentative any more."""
        for router, addrs in ROUTER_V6.items():
            for intf, addr in addrs.items():
                net[router].cmd(f"ip -6 addr add {addr}/64 dev {intf} nodad")
        for router, nets, via in (("r1", (2, 4), "2001:db8:9::2"), ("r2", (1, 3), "2001:db8:9::1")):
            for n in nets:
                net[router].cmd(f"ip -6 route add 2001:db8:{n}::/64 via {via}")
        if self.coverage == "savi+ingress":  # IPv6 has no rp_filter sysctl: netfilter's
            for router in ("r1", "r2"):
                net[router].cmd("ip6tables -t raw -A PREROUTING -m rpfilter --invert -j DROP")
        plan = {
            "a": ((A6_TRUSTED, "2001:db8:1::1"), (A6_UNTRUSTED, "2001:db8:2::1")),
            "b": ((B6_TRUSTED, "2001:db8:3::1"), (B6_UNTRUSTED, "2001:db8:4::1")),
        }
        for host, pairs in plan.items():
            h = net[host]
            for table, (addr, gw) in enumerate(pairs, start=1):
                intf = f"{host}-eth{table - 1}"
                if table == 2:  # the unprotected address is static; the other is leased
                    h.cmd(f"ip -6 addr add {addr}/64 dev {intf}")
                # The prefix is on-link before the lease comes (no router advertisements).
                prefix = addr.rsplit("::", 1)[0] + "::/64"
                h.cmd(f"ip -6 route replace {prefix} dev {intf}")
                h.cmd(f"ip -6 route add {prefix} dev {intf} table {table}")
                h.cmd(f"ip -6 route add default via {gw} dev {intf} table {table}")
                h.cmd(f"ip -6 rule add from {addr} table {table}")
            h.cmd(f"ip -6 route add default via {pairs[0][1]} dev {host}-eth0")
        for name, addr, gw in (("m1", M1_6, "2001:db8:1::1"), ("m2", M2_6, "2001:db8:2::1")):
            net[name].cmd(f"ip -6 addr add {addr}/64 dev {name}-eth0")
            net[name].cmd(f"ip -6 route add default via {gw}")
        for name in ("a", "b", "m1", "m2"):
            wait_dad(net[name])


def wait_dad(host, timeout: float = 10) -> None:
    """Until ``host`` has no tentative IPv6 address (DAD takes about a second)."""
    deadline = time.monotonic() + timeout
    while "inet6" in host.cmd("ip -6 addr show tentative"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{host.name}: IPv6 addresses still tentative after {timeout}s")
        time.sleep(0.1)


topos = {"dualhomed": DualHomedTopo}
if not globals().get("__package__"):
    topos = mn_support.remembering(topos)  # for the SAVI controller mn starts
