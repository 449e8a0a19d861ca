"""Binding flow-mods waiting to go to their switch, and the bundles in flight.

For a switch that takes bundles (the default; ``bundles = false`` in its config turns
them off): under a burst of claims the app does not send each binding's flow-mods on their
own; it keeps them here while more events wait and
sends a switch's together, as one OpenFlow bundle (controller/ofp.py ``send_bundle``), one
change of the switch's tables instead of one per flow-mod. With nothing else waiting they
go at once, so a lone claim is not held. A claim itself (the packet the app sends on)
waits behind its binding's flow-mods (``hold``) and goes right after them: sent before
them, the claimant's next packet (the ping behind its ARP) could reach the switch before
its allow flow and be dropped as spoofed. Switches without bundles (configured so, or
refusing them) are in ``unbundled``: the app sends them flow-mods one by one, at once.
Pure bookkeeping, no I/O: the app asks what to send and tells what happened.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

BUNDLE_MAX = 256  # flow-mods in one bundle at most: a longer burst sends one and goes on


@dataclass
class Bundle:
    dpid: int
    bundle_id: int
    msgs: list  # the flow-mods, in order
    xids: list[int] = field(default_factory=list)  # of the messages that carried them
    after: list = field(default_factory=list)  # packet-outs to send once the flow-mods are


class FlowBatches:
    def __init__(self, limit: int = BUNDLE_MAX):
        self.limit = limit
        self.waiting: dict[int, list] = {}  # dpid -> flow-mods not sent yet, in order
        self.held: dict[int, list] = {}  # dpid -> packet-outs waiting behind those
        self.in_flight: dict[tuple[int, int], Bundle] = {}  # (dpid, bundle id) -> bundle
        self.unbundled: set[int] = set()  # switches that refused a bundle: one by one
        self.taking: set[int] = set()  # switches that committed one since they connected
        self._ids = itertools.count(1)

    def add(self, dpid: int, msg) -> bool:
        """Keep ``msg`` for its switch; True when the switch's batch is full."""
        batch = self.waiting.setdefault(dpid, [])
        batch.append(msg)
        return len(batch) >= self.limit

    def hold(self, dpid: int, msg) -> bool:
        """Keep the packet-out ``msg`` until the switch's waiting flow-mods are sent; False
        (send it now) when none wait."""
        if not self.waiting.get(dpid):
            return False
        self.held.setdefault(dpid, []).append(msg)
        return True

    def take(self, dpid: int) -> Bundle | None:
        """What to send the switch now: a bundle (no xids yet) when there is more than
        one flow-mod and the switch takes bundles, else the flow-mods one by one (a
        bundle with id 0, which the app sends plainly and forgets); then, in ``after``,
        the packet-outs held behind them."""
        msgs, after = self.waiting.pop(dpid, []), self.held.pop(dpid, [])
        if not msgs and not after:
            return None
        if len(msgs) <= 1 or dpid in self.unbundled:
            return Bundle(dpid, 0, msgs, after=after)
        return Bundle(dpid, (next(self._ids) - 1) % 0xFFFFFFFF + 1, msgs, after=after)

    def dpids(self) -> list[int]:
        return list(self.waiting)

    def sent(self, bundle: Bundle, xids: list[int]) -> None:
        bundle.xids = xids
        self.in_flight[(bundle.dpid, bundle.bundle_id)] = bundle

    def committed(self, dpid: int, bundle_id: int) -> Bundle | None:
        """The bundle the switch committed, if ours and its first since it connected."""
        bundle = self.in_flight.pop((dpid, bundle_id), None)
        if bundle is None or dpid in self.taking:
            return None
        self.taking.add(dpid)
        return bundle

    def refused(self, dpid: int, xid: int, unsupported: bool) -> Bundle | None:
        """The bundle an error with this xid belongs to, no longer in flight (the app sends
        its flow-mods one by one: a bad one then fails alone); None if it is not one of
        ours. ``unsupported``: the switch does not take bundles, so none go to it again."""
        for key, bundle in self.in_flight.items():
            if key[0] == dpid and xid in bundle.xids:
                del self.in_flight[key]
                if unsupported:
                    self.unbundled.add(dpid)
                return bundle
        return None

    def switch_gone(self, dpid: int) -> None:
        self.waiting.pop(dpid, None)
        self.held.pop(dpid, None)
        self.unbundled.discard(dpid)
        self.taking.discard(dpid)
        for key in [k for k in self.in_flight if k[0] == dpid]:
            del self.in_flight[key]
