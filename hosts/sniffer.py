"""A copy of the few packets the agent must read but never hold: MP_CAPABLE handshakes
(the keys), MP_JOIN handshakes and packets whose first MPTCP option is ADDR_TRUST.

The copies come from netfilter (hosts/firewall.py's ``copy_in`` and ``copy_out`` chains
log them to NFLOG), so data segments never leave the kernel, are never cloned for us,
and nothing is delayed.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from hosts.firewall import COPY_GROUP
from hosts.nflog import NF_INET_LOCAL_IN, NF_INET_POST_ROUTING, Logged, NflogSocket
from hosts.options import OptionError
from hosts.segment import Segment, parse


@dataclass(frozen=True)
class Copy:
    """A copied segment and the interface it arrived on or leaves by."""

    ifname: str
    outgoing: bool
    segment: Segment


def copy_of(logged: Logged, names: dict[int, str]) -> Copy | None:
    """The Copy of a logged packet, or None if it is not a TCP segment we can read (or
    was logged at a hook we never log at). ``names``: ifindex to name, filled as met."""
    if logged.hook not in (NF_INET_LOCAL_IN, NF_INET_POST_ROUTING):
        return None
    outgoing = logged.hook == NF_INET_POST_ROUTING
    index = logged.outdev if outgoing else logged.indev
    if index not in names:
        try:
            names[index] = socket.if_indextoname(index)
        except OSError:
            names[index] = f"if{index}"  # gone already: no binding will match it
    try:
        return Copy(names[index], outgoing, parse(logged.packet))
    except OptionError:
        return None


class Sniffer:
    def __init__(self):
        self.log = NflogSocket(COPY_GROUP)
        self.names: dict[int, str] = {}
        self.unreadable = 0

    def fileno(self) -> int:
        return self.log.fileno()

    @property
    def overflows(self) -> int:
        return self.log.overflows

    def read(self) -> list[Copy]:
        out = []
        for logged in self.log.read():
            copy = copy_of(logged, self.names)
            if copy is None:
                self.unreadable += 1
            else:
                out.append(copy)
        return out

    def close(self) -> None:
        self.log.close()
