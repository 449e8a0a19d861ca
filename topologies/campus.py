"""A campus: many access switches, partly SAVI, a router layer and a server side.

::

    10.1.0.0/24   s1 (SAVI or legacy) --+
    10.2.0.0/24   s2 (SAVI or legacy) --+-- r0 (.1 on every network) -- s200 (SAVI) -- srv
    ...                                 |                      10.200.0.0/24, srv .10
    10.k.0.0/24   sk (SAVI or legacy) --+

``switches`` access switches, ``round(coverage * switches)`` of them SAVI (which ones:
the seed), the rest legacy learning switches; ``hosts`` single-homed hosts on each
(``hIsJ`` = host J of switch I, 10.I.0.(10+J), port J); ``multihomed`` of those get a
second interface on another access switch (10.I'.0.(100+N), port 100+N: Trusted MPTCP
hosts with source routing, running the agents), preferring one of the other kind, so
their paths differ in protection; ``attackers`` hosts ``mN`` (10.I.0.(200+N), port
150+N) placed by ``placement`` (PLACEMENTS). The router's port on each switch is UPLINK_PORT. The same
arguments and seed give the same campus.

``mn --custom topologies/campus.py --topo campus,switches=8,coverage=0.5 --controller savi``
(mn starts the SAVI controller: topologies/mn.py), or through the builder
(``Testbed(CampusTopo(...))``).
"""

from __future__ import annotations

import inspect
import random
import sys
from itertools import zip_longest
from pathlib import Path

if not globals().get("__package__"):
    # Loaded by `mn --custom FILE`, which execs the file without __file__ or a package:
    # put the repository (two levels above this file) on the path for our imports.
    here = Path(inspect.currentframe().f_code.co_filename).resolve()
    sys.path.insert(0, str(here.parent.parent))

from mininet.topo import Topo

from topologies.nodes import LegacySwitch, RoutedHost, Router, SaviSwitch

if not globals().get("__package__"):
    from topologies import mn as mn_support

    mn_support.preflight("campus", "topologies/campus.py")
    controllers = mn_support.controllers()  # `--controller savi`: mn starts it

UPLINK_PORT = 500
SERVER_NET, SERVER_DPID, SERVER = 200, 200, "10.200.0.10"
MAX_SWITCHES, MAX_HOSTS, MAX_EXTRA = 40, 50, 50
# Where the attackers go: one per switch in turn, alternating SAVI and legacy switches
# ("spread"); seeded over all switches ("random"), or over one kind ("savi", "legacy").
PLACEMENTS = ("spread", "random", "savi", "legacy")


def subnet_gateway(net: int) -> str:
    return f"10.{net}.0.1"


class CampusTopo(Topo):
    def build(
        self,
        switches: int = 4,
        hosts: int = 2,
        coverage: float = 0.5,
        multihomed: int = 1,
        attackers: int = 1,
        placement: str = "spread",
        seed: int = 1,
    ):
        if not 1 <= switches <= MAX_SWITCHES:
            raise ValueError(f"switches must be 1..{MAX_SWITCHES}, not {switches}")
        if not 1 <= hosts <= MAX_HOSTS:
            raise ValueError(f"hosts must be 1..{MAX_HOSTS} per switch, not {hosts}")
        if not 0.0 <= coverage <= 1.0:
            raise ValueError(f"coverage is a fraction of the access switches, not {coverage}")
        if not 0 <= multihomed <= min(MAX_EXTRA, switches * hosts) or (multihomed and switches < 2):
            raise ValueError(
                f"multihomed must be 0..{min(MAX_EXTRA, switches * hosts)} and needs two "
                f"switches or more, not {multihomed} with {switches}"
            )
        if not 0 <= attackers <= MAX_EXTRA:
            raise ValueError(f"attackers must be 0..{MAX_EXTRA}, not {attackers}")
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, not {placement!r}")
        rng = random.Random(seed)
        nets = list(range(1, switches + 1))
        self.savi_nets = set(rng.sample(nets, round(coverage * switches)))
        legacy = [x for x in nets if x not in self.savi_nets]
        where = {"savi": sorted(self.savi_nets), "legacy": legacy}.get(placement, nets)
        if attackers and not where:
            raise ValueError(f"no {placement} switch for the attackers at coverage {coverage}")
        self.router = self.addNode("r0", cls=Router, ip=f"{subnet_gateway(1)}/24")
        self.addresses: dict[str, list[str]] = {}  # host -> its addresses, protected first
        self.gateways: dict[str, str] = {}  # address -> its network's gateway
        self.interface: dict[str, str] = {}  # address -> the host's interface that has it
        self.on_savi: dict[str, bool] = {}  # address -> behind a SAVI switch
        self.attackers: list[str] = []
        switch_of = {}
        for net in nets:
            cls = SaviSwitch if net in self.savi_nets else LegacySwitch
            switch_of[net] = self.addSwitch(f"s{net}", cls=cls, dpid=f"{net:016x}")
            self.addLink(
                self.router,
                switch_of[net],
                port2=UPLINK_PORT,
                params1={"ip": f"{subnet_gateway(net)}/24"},
            )
            for j in range(1, hosts + 1):
                name = self._host(f"h{net}s{j}", net, 10 + j, f"00:00:00:01:{net:02x}:{j:02x}")
                self.addLink(name, switch_of[net], port2=j)
        single = [h for h in self.addresses]
        self.multihomed = sorted(rng.sample(single, multihomed), key=single.index)
        self.mptcp_clients = tuple(self.multihomed)  # they connect to the server
        for n, name in enumerate(self.multihomed, start=1):
            home = int(self.addresses[name][0].split(".")[1])
            others = [x for x in nets if x != home]
            other_kind = [x for x in others if (x in self.savi_nets) != (home in self.savi_nets)]
            net = rng.choice(other_kind or others)
            addr = f"10.{net}.0.{100 + n}"
            self.addLink(name, switch_of[net], port2=100 + n, params1={"ip": f"{addr}/24"})
            self._address(name, addr, net)
        spread = [
            x for pair in zip_longest(sorted(self.savi_nets), legacy) for x in pair if x is not None
        ]
        for n in range(1, attackers + 1):
            net = spread[(n - 1) % len(spread)] if placement == "spread" else rng.choice(where)
            name = self._host(f"m{n}", net, 200 + n, f"00:00:00:02:{net:02x}:{n:02x}")
            self.addLink(name, switch_of[net], port2=150 + n)
            self.attackers.append(name)
        s0 = self.addSwitch(f"s{SERVER_NET}", cls=SaviSwitch, dpid=f"{SERVER_DPID:016x}")
        self.addLink(
            self.router, s0, port2=UPLINK_PORT, params1={"ip": f"{subnet_gateway(SERVER_NET)}/24"}
        )
        srv = self._host("srv", SERVER_NET, 10, "00:00:00:00:c8:0a")
        self.addLink(srv, s0, port2=1)
        for name in self.addresses:
            self.nodeInfo(name)["routing"] = self._routing(name)
        self.dhcp_clients: list[str] = []
        self.dhcp6_clients: list[str] = []

    def _host(self, name: str, net: int, last: int, mac: str) -> str:
        addr = f"10.{net}.0.{last}"
        self.addHost(name, cls=RoutedHost, ip=f"{addr}/24", mac=mac)
        self._address(name, addr, net)
        return name

    def _routing(self, name: str) -> list[str]:
        """A default route; in a multi-homed host also one table per address (source
        routing, as in the dual-homed scenario)."""
        addrs = self.addresses[name]
        routing = []
        if len(addrs) > 1:
            for table, addr in enumerate(addrs, start=1):
                gateway, intf = self.gateways[addr], self.interface[addr]
                routing += [
                    f"route add default via {gateway} dev {intf} table {table}",
                    f"rule add from {addr} table {table}",
                ]
        return routing + [f"route add default via {self.gateways[addrs[0]]}"]

    def _address(self, name: str, addr: str, net: int) -> None:
        self.interface[addr] = f"{name}-eth{len(self.addresses.get(name, []))}"
        self.gateways[addr] = subnet_gateway(net)
        self.on_savi[addr] = net in self.savi_nets or net == SERVER_NET
        listed = self.addresses.setdefault(name, [])
        listed.append(addr)
        listed.sort(key=lambda a: not self.on_savi[a])  # protected first

    def savi_config(self) -> dict:
        dpids = sorted(self.savi_nets) + [SERVER_DPID]
        return {"switch": [{"dpid": d, "trusted_ports": [UPLINK_PORT]} for d in dpids]}

    def agent_hosts(self) -> dict[str, list[str]]:
        """The multi-homed hosts and the server, with their addresses (protected first)."""
        return {h: self.addresses[h] for h in [*self.multihomed, "srv"]}

    def dhcp_servers(self) -> dict:
        return {}

    def dhcp6_servers(self) -> dict:
        return {}


topos = {"campus": CampusTopo}
if not globals().get("__package__"):
    topos = mn_support.remembering(topos)  # for the SAVI controller mn starts
