"""The fake OpenFlow table is strict, like Faucet's: it refuses what a real switch would
leave undefined (overlapping flows of equal priority) and messages the app never sends."""

import pytest

from controller.ofp import add_flow
from controller.pipeline import FlowSpec
from controller.pipeline import flow as make_flow
from tests.fakes import FakeDatapath


def flow(priority: int, **match) -> FlowSpec:
    return make_flow(priority, "drop", 0, **match)


def test_overlapping_flows_of_equal_priority_are_refused():
    dp = FakeDatapath(1)
    add_flow(dp, flow(100, in_port=1))
    add_flow(dp, flow(100, in_port=2))  # disjoint: fine
    add_flow(dp, flow(200, in_port=1, eth_type=0x0800))  # higher priority: fine
    add_flow(dp, flow(100, in_port=1))  # the same match again replaces it: fine
    with pytest.raises(AssertionError, match="flows overlap at priority 100"):
        add_flow(dp, flow(100, in_port=1, eth_type=0x0806))
    with pytest.raises(AssertionError, match="flows overlap at priority 100"):
        add_flow(dp, flow(100, eth_type=0x0800, ipv4_src="10.0.0.1"))  # any in_port
    add_flow(dp, flow(300, eth_type=0x0800, ipv4_src="10.0.0.1"))
    add_flow(dp, flow(300, eth_type=0x0800, ipv4_src="10.0.0.2"))  # disjoint sources


def test_messages_the_app_never_sends_are_refused():
    dp = FakeDatapath(1)
    with pytest.raises(AssertionError, match="OFPEchoRequest"):
        dp.send_msg(dp.ofproto_parser.OFPEchoRequest(dp))


def test_barriers_get_xids_and_are_answered_once():
    dp = FakeDatapath(1)
    first, second = (dp.ofproto_parser.OFPBarrierRequest(dp) for _ in range(2))
    dp.send_msg(first)
    dp.send_msg(second)
    assert first.xid != second.xid
    assert [r.msg.xid for r in dp.barrier_replies()] == [first.xid, second.xid]
    assert dp.barrier_replies() == []
