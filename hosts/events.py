"""The kernel's path-manager events as plain data (no netlink here): what
``hosts/pm_netlink.py`` reads and ``hosts/extension.py`` decides on."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum


class EventKind(Enum):
    CREATED = "created"
    ESTABLISHED = "established"
    CLOSED = "closed"
    ANNOUNCED = "announced"
    REMOVED = "removed"
    SUB_ESTABLISHED = "sub_established"
    SUB_CLOSED = "sub_closed"
    SUB_PRIORITY = "sub_priority"
    LISTENER_CREATED = "listener_created"
    LISTENER_CLOSED = "listener_closed"


# include/uapi/linux/mptcp.h: enum mptcp_event_type
KIND_OF_CMD = {
    1: EventKind.CREATED,
    2: EventKind.ESTABLISHED,
    3: EventKind.CLOSED,
    6: EventKind.ANNOUNCED,
    7: EventKind.REMOVED,
    10: EventKind.SUB_ESTABLISHED,
    11: EventKind.SUB_CLOSED,
    13: EventKind.SUB_PRIORITY,
    15: EventKind.LISTENER_CREATED,
    16: EventKind.LISTENER_CLOSED,
}


@dataclass(frozen=True)
class Event:
    kind: EventKind
    token: int
    saddr: str | None = None
    daddr: str | None = None
    sport: int | None = None
    dport: int | None = None
    loc_id: int | None = None
    rem_id: int | None = None
    server_side: bool = False
    backup: bool = False
    error: int = 0

    @property
    def four(self) -> tuple[str, int, str, int]:
        return (self.saddr, self.sport, self.daddr, self.dport)


def unmapped(address: str | None) -> str | None:
    """An IPv4-mapped IPv6 address (``::ffff:10.1.0.10``: how the kernel names the IPv4
    subflows of an IPv6 socket) as the IPv4 address it is on the wire, so the TPBT, the
    classifier's keys and the copies of the segments agree; other addresses unchanged."""
    if address is None or ":" not in address:
        return address
    mapped = ipaddress.IPv6Address(address).ipv4_mapped
    return address if mapped is None else str(mapped)
