"""A fake OpenFlow datapath and flow table (in the spirit of Faucet's FakeOFTable).

``FakeDatapath`` records the messages the app sends; ``FlowTable`` applies its flow-mods
and answers, for a packet's header fields, what the switch would do with it. This lets
unit tests run the SAVI pipeline end to end without a switch or root. Like Faucet's, it
is strict: a message the app has no business sending, or a flow that overlaps another of
the same priority (which OpenFlow leaves to the switch to order: undefined behaviour),
fails the test.
"""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

# What the SAVI app sends a switch: set-up, its flows (binding flows in bundles),
# re-injected packets, the requests behind its drop counters and port state, and
# barriers behind new bindings.
KNOWN_MESSAGES = {
    "OFPBarrierRequest",
    "OFPSetConfig",
    "OFPFlowMod",
    "OFPPacketOut",
    "OFPFlowStatsRequest",
    "OFPPortDescStatsRequest",
    "ONFBundleAddMsg",
    "ONFBundleCtrlMsg",
}


class FakeDatapath:
    def __init__(self, dpid: int = 1, framework=None):
        if framework is None:
            from controller import compat as framework
        self.id = dpid
        self.ofproto = framework.ofproto_v1_3
        self.ofproto_parser = framework.ofproto_v1_3_parser
        self.sent: list = []
        self.table = FlowTable(self.ofproto)
        self.xid = 0
        self.barriers: list[int] = []  # xids of barriers not yet answered
        self.bundles: dict[int, list] = {}  # open bundles: id -> flow-mods added
        self.committed: list[int] = []  # ids of bundles committed, not yet answered
        # A switch without bundles (or whose bundle fails): each bundle message is
        # refused with this (type, code), nothing in it applied; the errors wait here.
        self.refuse_bundles: tuple[int, int] | None = None
        self.errors: list = []

    def send_msg(self, msg) -> None:
        if type(msg).__name__ not in KNOWN_MESSAGES:
            raise AssertionError(f"the app sent {type(msg).__name__}, which it has no use for")
        if msg.xid is None:  # as Ryu's Datapath.send_msg does
            self.xid += 1
            msg.xid = self.xid
        self.sent.append(msg)
        name = type(msg).__name__
        if name == "OFPFlowMod":
            self.table.apply(msg)
        elif name == "OFPBarrierRequest":
            self.barriers.append(msg.xid)
        elif name.startswith("ONFBundle"):
            self._bundle(msg)

    def _bundle(self, msg) -> None:
        """Open vSwitch's bundles, strictly: a bundle opens with its first added message,
        holds only flow-mods, and its commit applies them in order; a commit of a bundle
        that was never opened fails the test."""
        if self.refuse_bundles is not None:
            etype, code = self.refuse_bundles
            self.errors.append(
                SimpleNamespace(
                    msg=SimpleNamespace(datapath=self, xid=msg.xid, type=etype, code=code)
                )
            )
            return
        if type(msg).__name__ == "ONFBundleAddMsg":
            if type(msg.message).__name__ != "OFPFlowMod":
                raise AssertionError(f"a bundle holds {type(msg.message).__name__}")
            self.bundles.setdefault(msg.bundle_id, []).append(msg.message)
            return
        if msg.type != self.ofproto.ONF_BCT_COMMIT_REQUEST:
            raise AssertionError(f"unexpected bundle control type {msg.type}")
        if msg.bundle_id not in self.bundles:
            raise AssertionError(f"commit of bundle {msg.bundle_id}, which holds nothing")
        for fm in self.bundles.pop(msg.bundle_id):
            self.table.apply(fm)
        self.committed.append(msg.bundle_id)

    def bundle_replies(self) -> list:
        """The commit replies due (each bundle is applied as its commit comes)."""
        replies = [
            SimpleNamespace(
                msg=SimpleNamespace(
                    datapath=self, type=self.ofproto.ONF_BCT_COMMIT_REPLY, bundle_id=b
                )
            )
            for b in self.committed
        ]
        self.committed.clear()
        return replies

    def flow_mods(self) -> list:
        """The flow-mods sent, plainly or in bundles, in the order sent."""
        out = []
        for m in self.sent:
            if type(m).__name__ == "OFPFlowMod":
                out.append(m)
            elif type(m).__name__ == "ONFBundleAddMsg":
                out.append(m.message)
        return out

    def barrier_replies(self) -> list:
        """The replies to the barriers sent so far (the table applies flow-mods as they
        come, so each is due at once; the test decides when the app gets them)."""
        replies = [
            SimpleNamespace(msg=SimpleNamespace(datapath=self, xid=x)) for x in self.barriers
        ]
        self.barriers.clear()
        return replies

    def packet_outs(self) -> list:
        return [m for m in self.sent if type(m).__name__ == "OFPPacketOut"]

    def clear(self) -> None:
        self.sent.clear()


class FlowTable:
    def __init__(self, ofproto):
        self.ofp = ofproto
        self.flows: dict[tuple, tuple[int, str]] = {}  # (priority, match) -> (cookie, action)

    def apply(self, fm) -> None:
        key = (fm.priority, tuple(sorted(fm.match.items())))
        if fm.command == self.ofp.OFPFC_ADD:
            for priority, match in self.flows:
                if priority == fm.priority and match != key[1] and _overlap(match, key[1]):
                    raise AssertionError(
                        f"flows overlap at priority {priority}: {dict(match)} and {dict(key[1])}"
                    )
            self.flows[key] = (fm.cookie, self._action(fm))
        elif fm.command == self.ofp.OFPFC_DELETE_STRICT:
            self.flows.pop(key, None)
        else:
            raise AssertionError(f"unexpected flow-mod command {fm.command}")

    def _action(self, fm) -> str:
        if not fm.instructions:
            return "drop"
        (out,) = fm.instructions[0].actions
        if out.port == self.ofp.OFPP_NORMAL:
            return "normal"
        if out.port == self.ofp.OFPP_CONTROLLER:
            return "controller"
        return f"output:{out.port}"

    def lookup(self, **fields) -> str:
        """The action of the highest-priority flow matching the packet's fields."""
        best = None
        for (priority, match), (_cookie, action) in self.flows.items():
            if all(_equal(k, fields.get(k), v) for k, v in match):
                if best is None or priority > best[0]:
                    best = (priority, action)
        return "drop" if best is None else best[1]

    def cookies(self, top_byte: int) -> list[int]:
        return [c for c, _ in self.flows.values() if c >> 56 == top_byte]


def _overlap(one: tuple, other: tuple) -> bool:
    """Whether some packet matches both (exact matches: every field they share agrees; a
    masked field is taken as agreeing, so the check may miss, never invent, an overlap)."""
    theirs = dict(other)
    for field, value in one:
        if (
            field in theirs
            and not isinstance(value, tuple)
            and not isinstance(theirs[field], tuple)
        ):
            if not _equal(field, value, theirs[field]):
                return False
    return True


def _equal(field: str, have, want) -> bool:
    if have is None:
        return False
    if field.startswith(("ipv4", "ipv6", "arp_spa", "arp_tpa")):
        return ipaddress.ip_address(have) == ipaddress.ip_address(want)
    return have == want


def packet_in(dp: FakeDatapath, in_port: int, data: bytes):
    return SimpleNamespace(msg=SimpleNamespace(datapath=dp, match={"in_port": in_port}, data=data))


def features(dp: FakeDatapath):
    return SimpleNamespace(msg=SimpleNamespace(datapath=dp))


def port_desc(dp: FakeDatapath, ports: list[int]):
    body = [SimpleNamespace(port_no=p, state=0, config=0) for p in ports]
    return SimpleNamespace(msg=SimpleNamespace(datapath=dp, body=body))
