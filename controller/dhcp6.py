"""Which client asked: DHCPv6 snooping's memory between a client's message and the
server's REPLY.

A DHCPv6 REPLY names its client only by DUID and transaction ID, not by MAC or port
(RFC 8415), so the binding it makes (RFC 7513) goes to the port and MAC the client's
own message came from. Pure and bounded: each access port keeps its newest few
transactions, so a flood of SOLICITs on one port forgets only that port's, and an entry
older than ``ttl`` is gone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Asker:
    port: int
    mac: str
    duid: bytes
    at: float


class Dhcp6Clients:
    def __init__(self, ttl: float = 60.0, per_port: int = 16):
        self.ttl, self.per_port = ttl, per_port
        self._by_port: dict[tuple[int, int], OrderedDict[int, Asker]] = {}
        self._port_of: dict[tuple[int, int], int] = {}  # (dpid, xid) -> port

    def asked(self, dpid: int, port: int, mac: str, xid: int, duid: bytes, now: float) -> None:
        """A client message with a DUID (transaction ``xid``) came from (dpid, port)."""
        old_port = self._port_of.get((dpid, xid))
        if old_port is not None and old_port != port:
            self._by_port[(dpid, old_port)].pop(xid, None)
        pending = self._by_port.setdefault((dpid, port), OrderedDict())
        pending.pop(xid, None)
        pending[xid] = Asker(port, mac, duid, now)
        self._port_of[(dpid, xid)] = port
        while len(pending) > self.per_port or (
            pending and next(iter(pending.values())).at + self.ttl < now
        ):
            gone, _ = pending.popitem(last=False)
            self._port_of.pop((dpid, gone), None)

    def asker(self, dpid: int, xid: int, duid: bytes, now: float) -> Asker | None:
        """Who asked in transaction ``xid`` with ``duid``, if it did within ``ttl``."""
        port = self._port_of.get((dpid, xid))
        if port is None:
            return None
        a = self._by_port[(dpid, port)].get(xid)
        if a is None or a.duid != duid or a.at + self.ttl < now:
            return None
        return a

    def __len__(self) -> int:
        return sum(len(p) for p in self._by_port.values())
