"""The SAVI switch pipeline as plain data: which flows a switch needs, as ``FlowSpec``s.

One OpenFlow table. Uplinks forward freely; on access ports only packets whose
(in_port, MAC, source IP) match a binding go to NORMAL forwarding, everything the
controller must see (claims, DHCP, neighbour advertisements, probe answers) goes to it,
and the rest is dropped by a per-port rule whose counter is the port's spoof count.
A binding's flows carry a cookie that encodes its source and expiry, so the switch
itself holds what a restarted controller needs to recover the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.bindings import DHCP, FCFS, STATIC, Binding

NORMAL, CONTROLLER, DROP = "normal", "controller", "drop"

PRIO_UPLINK_DHCP = 320
PRIO_UPLINK = 300
PRIO_PROBE_REPLY = 260
PRIO_RA_GUARD = 250
PRIO_DHCP = 240
PRIO_NA_BOUND = 220
PRIO_NA = 210
PRIO_BOUND = 200
PRIO_TO_CONTROLLER = 100
PRIO_PORT_DROP = 10

# ICMPv6 router advertisement and redirect: only routers send them (RA guard, RFC 6105).
ROUTER_ONLY_ICMPV6 = (134, 137)
DHCP6_CLIENT = {"eth_type": 0x86DD, "ip_proto": 17, "udp_src": 546, "udp_dst": 547}
# Server-originated DHCPv6 (to clients, or relay to relay) leaves port 547.
DHCP6_SERVER = {"eth_type": 0x86DD, "ip_proto": 17, "udp_src": 547}

# Source MAC of the controller's own probes; answers to it come back to the controller.
PROBE_MAC = "02:5a:00:00:00:01"

BINDING_TAG = 0x5A
BASE_TAG = 0x5B
TAG_MASK = 0xFF << 56
SOURCE_CODES = {FCFS: 1, DHCP: 2, STATIC: 3}
SOURCE_NAMES = {v: k for k, v in SOURCE_CODES.items()}


@dataclass(frozen=True)
class FlowSpec:
    priority: int
    match: tuple[tuple[str, object], ...]  # OFPMatch keyword arguments, sorted
    action: str
    cookie: int

    @property
    def match_dict(self) -> dict:
        return dict(self.match)


def flow(priority: int, action: str, cookie: int, **match) -> FlowSpec:
    return FlowSpec(priority, tuple(sorted(match.items())), action, cookie)


def base_cookie(port: int = 0) -> int:
    return (BASE_TAG << 56) | port


def binding_cookie(b: Binding) -> int:
    expiry = 0 if b.expires_at is None else int(b.expires_at) & 0xFFFFFFFF
    return (BINDING_TAG << 56) | (SOURCE_CODES[b.source] << 48) | expiry


def switch_flows() -> list[FlowSpec]:
    """Flows every SAVI switch has, whatever its ports."""
    c = base_cookie()
    return [
        flow(PRIO_PROBE_REPLY, CONTROLLER, c, eth_dst=PROBE_MAC),
        # DHCP client messages are snooped even from bound sources (RELEASE, renewals).
        flow(PRIO_DHCP, CONTROLLER, c, eth_type=0x0800, ip_proto=17, udp_src=68, udp_dst=67),
        flow(PRIO_DHCP, CONTROLLER, c, **DHCP6_CLIENT),
        flow(PRIO_TO_CONTROLLER, CONTROLLER, c, eth_type=0x0806),
        flow(PRIO_TO_CONTROLLER, CONTROLLER, c, eth_type=0x86DD, ip_proto=58, icmpv6_type=135),
        flow(PRIO_NA, CONTROLLER, c, eth_type=0x86DD, ip_proto=58, icmpv6_type=136),
    ]


def port_flows(port: int, trusted: bool, dhcp_server: bool, router: bool = False) -> list[FlowSpec]:
    """Flows for one port. Uplinks pass all; access ports drop what no binding allows,
    DHCP server messages unless they are a server's port, and router advertisements and
    redirects unless they are a router's (these drops outrank a binding's allow)."""
    c = base_cookie(port)
    server_msgs = {"eth_type": 0x0800, "ip_proto": 17, "udp_src": 67, "udp_dst": 68}
    flows = []
    for msgs in (server_msgs, DHCP6_SERVER):
        if trusted or dhcp_server:
            flows.append(flow(PRIO_UPLINK_DHCP, CONTROLLER, c, in_port=port, **msgs))
        else:
            flows.append(flow(PRIO_DHCP + 1, DROP, c, in_port=port, **msgs))
    if not (trusted or router):
        ra = {"eth_type": 0x86DD, "ip_proto": 58}
        for kind in ROUTER_ONLY_ICMPV6:
            flows.append(flow(PRIO_RA_GUARD, DROP, c, in_port=port, icmpv6_type=kind, **ra))
    if trusted:
        flows.append(flow(PRIO_UPLINK, NORMAL, c, in_port=port))
    else:
        flows.append(flow(PRIO_PORT_DROP, DROP, c, in_port=port))
    return flows


def binding_flows(b: Binding) -> list[FlowSpec]:
    """Allow flows for one binding: IP from it, and its own ARP or neighbour adverts."""
    c = binding_cookie(b)
    who = {"in_port": b.port, "eth_src": b.mac}
    if b.version == 4:
        return [
            flow(PRIO_BOUND, NORMAL, c, eth_type=0x0800, ipv4_src=b.ip, **who),
            flow(PRIO_BOUND, NORMAL, c, eth_type=0x0806, arp_spa=b.ip, arp_sha=b.mac, **who),
        ]
    return [
        flow(PRIO_BOUND, NORMAL, c, eth_type=0x86DD, ipv6_src=b.ip, **who),
        flow(
            PRIO_NA_BOUND,
            NORMAL,
            c,
            eth_type=0x86DD,
            ip_proto=58,
            icmpv6_type=136,
            ipv6_src=b.ip,
            ipv6_nd_target=b.ip,
            **who,
        ),
    ]


def binding_from_flow(dpid: int, cookie: int, match: dict) -> Binding | None:
    """Rebuild a binding from one of its flows (controller restart); None if not ours."""
    if cookie >> 56 != BINDING_TAG or match.get("eth_type") not in (0x0800, 0x86DD):
        return None
    ip = match.get("ipv4_src") or match.get("ipv6_src")
    source = SOURCE_NAMES.get((cookie >> 48) & 0xFF)
    if ip is None or source is None or "in_port" not in match or "eth_src" not in match:
        return None
    expiry = cookie & 0xFFFFFFFF
    return Binding(
        dpid, match["in_port"], match["eth_src"], ip, source, float(expiry) if expiry else None
    )
