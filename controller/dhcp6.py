"""Which client asked: DHCPv6 snooping's memory between a client's message and the
server's REPLY.

A DHCPv6 REPLY names its client only by DUID and transaction ID (RFC 8415), so the
binding it makes (RFC 7513) goes to the port and MAC its client's own message came
from. Whoever shares the client's switch sees that message (multicast) and may send a
copy from its own port, or start a transaction of its own with the client's DUID, to
have the client's lease bound to its port. So a REPLY binds only for a transaction that
one (port, MAC) asked in, addressed to that MAC, and for a DUID that names a MAC
(DUID-LLT, DUID-LL) only if it is that MAC; a transaction asked from two places binds
nothing (fail closed). (Moving a live binding to another port is the table's call:
BindingTable.dhcp_ack with ``move=False``.)

Pure and bounded: each port keeps its newest few transactions, so a flood on one port
forgets only that port's, and an entry older than ``ttl`` is gone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DUID_LLT, DUID_LL, HW_ETHERNET = 1, 3, 1


@dataclass(frozen=True)
class Asker:
    port: int
    mac: str
    duid: bytes
    at: float


def duid_mac(duid: bytes) -> str | None:
    """The Ethernet address a DUID-LLT or DUID-LL names; None for other DUIDs."""
    kind = int.from_bytes(duid[:2], "big")
    start = {DUID_LLT: 8, DUID_LL: 4}.get(kind)
    if start is None or len(duid) != start + 6 or int.from_bytes(duid[2:4], "big") != HW_ETHERNET:
        return None
    return ":".join(f"{b:02x}" for b in duid[start:])


class Dhcp6Clients:
    def __init__(self, ttl: float = 60.0, per_port: int = 16):
        self.ttl, self.per_port = ttl, per_port
        # (dpid, port) -> (xid, mac) -> who asked, oldest first
        self._by_port: dict[tuple[int, int], OrderedDict[tuple[int, str], Asker]] = {}
        self._ports_of: dict[tuple[int, int], set[int]] = {}  # (dpid, xid) -> ports

    def asked(self, dpid: int, port: int, mac: str, xid: int, duid: bytes, now: float) -> bool:
        """A client message with a DUID (transaction ``xid``) came from (dpid, port) and
        ``mac``. True if the transaction is now asked from more than one place."""
        pending = self._by_port.setdefault((dpid, port), OrderedDict())
        pending.pop((xid, mac), None)
        pending[(xid, mac)] = Asker(port, mac, duid, now)
        self._ports_of.setdefault((dpid, xid), set()).add(port)
        while len(pending) > self.per_port or (
            pending and next(iter(pending.values())).at + self.ttl < now
        ):
            (gone, _), _ = pending.popitem(last=False)
            if not any(x == gone for x, _ in pending):
                ports = self._ports_of.get((dpid, gone), set())
                ports.discard(port)
                if not ports:
                    self._ports_of.pop((dpid, gone), None)
        return len(self._askers(dpid, xid, duid, now)) > 1

    def asker(self, dpid: int, xid: int, duid: bytes, mac: str, now: float) -> Asker | None:
        """Who a REPLY in transaction ``xid`` for ``duid``, sent to ``mac``, binds for:
        the one client that asked, if it asked from ``mac`` and the DUID allows it."""
        askers = self._askers(dpid, xid, duid, now)
        if len(askers) != 1 or askers[0].mac != mac or duid_mac(duid) not in (None, mac):
            return None
        return askers[0]

    def _askers(self, dpid: int, xid: int, duid: bytes, now: float) -> list[Asker]:
        return [
            a
            for port in self._ports_of.get((dpid, xid), ())
            for (x, _), a in self._by_port[(dpid, port)].items()
            if x == xid and a.duid == duid and a.at + self.ttl >= now
        ]

    def __len__(self) -> int:
        return sum(len(p) for p in self._by_port.values())
