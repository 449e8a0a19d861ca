"""Small OpenFlow 1.3 helpers: turning ``FlowSpec``s and packets into messages.

Kept apart from the app so the app reads as SAVI logic, and so unit tests can check the
messages against a fake datapath that only records what it is sent.
"""

from __future__ import annotations

from controller.packets import finish_checksum
from controller.pipeline import CONTROLLER, DROP, NORMAL, TAG_MASK, FlowSpec


def actions_for(dp, action: str) -> list:
    ofp, parser = dp.ofproto, dp.ofproto_parser
    if action == NORMAL:
        return [parser.OFPActionOutput(ofp.OFPP_NORMAL)]
    if action == CONTROLLER:
        return [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
    if action == DROP:
        return []
    raise ValueError(f"unknown action {action!r}")


def match_of(dp, spec: FlowSpec):
    """The spec's OFPMatch. Its fields are handed over in OXM order, as Ryu's own parser
    does: ``OFPMatch(**fields)`` converts every value from text and back to sort them,
    half of a claim's cost in the controller (the message on the wire is the same)."""
    order = _oxm_order(dp.ofproto)
    if any(name not in order or isinstance(value, tuple) for name, value in spec.match):
        return dp.ofproto_parser.OFPMatch(**spec.match_dict)  # masked or unknown: Ryu's way
    fields = sorted(spec.match, key=lambda field: order[field[0]])
    return dp.ofproto_parser.OFPMatch(_ordered_fields=fields)


_OXM_ORDERS: dict = {}


def _oxm_order(ofproto) -> dict[str, int]:
    order = _OXM_ORDERS.get(ofproto)
    if order is None:
        order = _OXM_ORDERS[ofproto] = {f.name: f.num for f in ofproto.oxm_types}
    return order


def flow_mod(dp, spec: FlowSpec, delete: bool = False):
    """The flow-mod that adds ``spec``, or (``delete``) removes exactly it."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    if delete:
        return parser.OFPFlowMod(
            datapath=dp,
            command=ofp.OFPFC_DELETE_STRICT,
            priority=spec.priority,
            match=match_of(dp, spec),
            out_port=ofp.OFPP_ANY,
            out_group=ofp.OFPG_ANY,
        )
    actions = actions_for(dp, spec.action)
    inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
    return parser.OFPFlowMod(
        datapath=dp,
        cookie=spec.cookie,
        priority=spec.priority,
        match=match_of(dp, spec),
        instructions=inst,
    )


def add_flow(dp, spec: FlowSpec) -> None:
    dp.send_msg(flow_mod(dp, spec))


def send_bundle(dp, bundle_id: int, msgs: list) -> list[int]:
    """Send ``msgs`` as one bundle (OpenFlow 1.3's ONF bundle extension, which Open
    vSwitch implements): the switch applies them in order and at once, one change of its
    tables where each flow-mod alone is one (what that saves, and costs the controller:
    docs/controller.md). Added messages open the bundle; the commit ends it. The xids of
    everything sent, in order (an error names one)."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    flags = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
    sent = [parser.ONFBundleAddMsg(dp, bundle_id, flags, msg, []) for msg in msgs]
    sent.append(parser.ONFBundleCtrlMsg(dp, bundle_id, ofp.ONF_BCT_COMMIT_REQUEST, flags, []))
    for msg in sent:
        dp.send_msg(msg)  # the datapath gives each its xid
    return [msg.xid for msg in sent]


def packet_out(dp, in_port: int | None, data: bytes, out_port: int | None = None) -> None:
    """Send ``data`` to NORMAL forwarding as if it came in on ``in_port``, or to a port,
    with the checksum its sender left to the NIC finished (``packets.finish_checksum``)."""
    dp.send_msg(packet_out_msg(dp, in_port, data, out_port))


def packet_out_msg(dp, in_port: int | None, data: bytes, out_port: int | None = None):
    """The packet-out ``packet_out`` sends, to send later."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    port = ofp.OFPP_NORMAL if out_port is None else out_port
    return parser.OFPPacketOut(
        datapath=dp,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=ofp.OFPP_CONTROLLER if in_port is None else in_port,
        actions=[parser.OFPActionOutput(port)],
        data=finish_checksum(data),
    )


def request_flows(dp, tag: int) -> None:
    """Ask for every flow whose cookie carries ``tag`` in its top byte."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    dp.send_msg(
        parser.OFPFlowStatsRequest(
            dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, tag << 56, TAG_MASK, parser.OFPMatch()
        )
    )


def barrier(dp) -> int:
    """Ask the switch to answer once it has applied every message sent before; the xid."""
    msg = dp.ofproto_parser.OFPBarrierRequest(dp)
    dp.send_msg(msg)  # the datapath gives the message its xid
    return msg.xid


def match_fields(match) -> dict:
    """An OFPMatch as a plain dict (masked fields are not used by our flows)."""
    return {k: v for k, v in match.items()}


def is_port_down(dp, port) -> bool:
    ofp = dp.ofproto
    return bool(port.state & ofp.OFPPS_LINK_DOWN) or bool(port.config & ofp.OFPPC_PORT_DOWN)
