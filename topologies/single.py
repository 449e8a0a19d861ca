"""One SAVI access switch with a few hosts: the smallest testbed.

``mn --custom topologies/single.py --topo savi_single,3 --controller savi`` works for a
look around (mn starts the SAVI controller: topologies/mn.py); ``python -m topologies
savi_single`` starts the controller, the management network, DHCP and a CLI with the
testbed's commands.

Ports: host ``hN`` is on port N of ``s1``; ``dhcp`` (10.0.0.254) serves leases on port 100
when ``dhcp=True``; hosts then have no static address and run a DHCP client. With
``dhcp6=True`` it serves DHCPv6 leases from 2001:db8::/64 as well (it is at
2001:db8::fe), its port may send router advertisements (RA guard), and each host also
runs a DHCPv6 client.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

if not globals().get("__package__"):
    # Loaded by `mn --custom FILE`, which execs the file without __file__ or a package:
    # put the repository (two levels above this file) on the path for our imports.
    here = Path(inspect.currentframe().f_code.co_filename).resolve()
    sys.path.insert(0, str(here.parent.parent))

from mininet.topo import Topo

from topologies.nodes import SaviSwitch

if not globals().get("__package__"):
    # mn needs the SAVI controller: say so now rather than wait forever.
    from topologies import mn as mn_support

    mn_support.preflight("savi_single", "topologies/single.py")
    controllers = mn_support.controllers()  # `--controller savi`: mn starts it

SUBNET = "10.0.0.0/24"
DHCP_SERVER_PORT = 100
DHCP_RANGE = ("10.0.0.100", "10.0.0.199")
SUBNET6 = "2001:db8::/64"
DHCP6_SERVER_ADDRESS = "2001:db8::fe"
DHCP6_RANGE = ("2001:db8::100", "2001:db8::1ff")


class SingleSwitchTopo(Topo):
    def build(self, hosts: int = 3, dhcp: bool = False, dhcp6: bool = False):
        if not 1 <= hosts <= 90:
            raise ValueError(f"hosts must be 1..90, not {hosts}")
        if dhcp6 and not dhcp:
            raise ValueError("dhcp6 needs dhcp (one server host serves both)")
        self.dhcp_server = None
        self.dhcp_clients: list[str] = []
        self.dhcp6_clients: list[str] = []
        s1 = self.addSwitch("s1", cls=SaviSwitch, dpid="0000000000000001")
        for i in range(1, hosts + 1):
            ip = None if dhcp else f"10.0.0.{i}/24"
            name = self.addHost(f"h{i}", ip=ip, mac=f"00:00:00:00:00:{i:02x}")
            self.addLink(name, s1, port2=i)
            if dhcp:
                self.dhcp_clients.append(name)
            if dhcp6:
                self.dhcp6_clients.append(name)
        if dhcp:
            self.dhcp_server = self.addHost("dhcp", ip="10.0.0.254/24", mac="00:00:00:00:00:fe")
            self.addLink(self.dhcp_server, s1, port2=DHCP_SERVER_PORT)

    def savi_config(self) -> dict:
        """The controller's config for this topology (see controller/config.py)."""
        ports = [DHCP_SERVER_PORT] if self.dhcp_server else []
        routers = ports if self.dhcp6_clients else []
        return {
            "switch": [
                {
                    "dpid": 1,
                    "trusted_ports": [],
                    "dhcp_server_ports": ports,
                    "router_ports": routers,
                }
            ]
        }

    def agent_hosts(self) -> dict[str, list[str]]:
        return {}  # single-homed hosts: no multipath

    def management_hosts(self) -> set[str]:
        """h1 reads the trust export in the tests; the other hosts have no way to the
        controller."""
        return {"h1"}

    def dhcp_servers(self) -> dict:
        """host -> (interface, first, last address) of the dnsmasq servers to start."""
        if not self.dhcp_server:
            return {}
        return {self.dhcp_server: (f"{self.dhcp_server}-eth0", *DHCP_RANGE)}

    def dhcp6_servers(self) -> dict:
        """host -> (interface, its address/prefix length, first, last address) of the
        DHCPv6 servers (the same dnsmasq serves both families)."""
        if not self.dhcp6_clients:
            return {}
        address = f"{DHCP6_SERVER_ADDRESS}/64"
        return {self.dhcp_server: (f"{self.dhcp_server}-eth0", address, *DHCP6_RANGE)}


topos = {"savi_single": SingleSwitchTopo}
if not globals().get("__package__"):
    topos = mn_support.remembering(topos)  # for the SAVI controller mn starts
