"""The bookkeeping of binding flow-mods waiting for their switch and bundles in flight."""

from controller.batches import FlowBatches


def test_a_lone_flow_mod_goes_plainly_and_several_go_as_one_bundle():
    b = FlowBatches()
    assert b.take(1) is None
    b.add(1, "fm1")
    lone = b.take(1)
    assert lone.bundle_id == 0 and lone.msgs == ["fm1"]
    b.add(1, "fm2")
    b.add(1, "fm3")
    b.add(2, "other switch")
    bundle = b.take(1)
    assert bundle.bundle_id != 0 and bundle.msgs == ["fm2", "fm3"]
    assert b.take(1) is None and b.dpids() == [2]
    b.add(1, "fm4")
    b.add(1, "fm5")
    assert b.take(1).bundle_id != bundle.bundle_id  # a fresh id for each bundle


def test_a_full_batch_says_so():
    b = FlowBatches(limit=3)
    assert not b.add(1, "a") and not b.add(1, "b")
    assert b.add(1, "c")


def test_bundle_ids_stay_within_32_bits_and_are_never_zero():
    b = FlowBatches()
    b._ids = iter([0xFFFFFFFF, 0xFFFFFFFF + 1])
    for want in (0xFFFFFFFF, 1):
        b.add(1, "a")
        b.add(1, "b")
        assert b.take(1).bundle_id == want


def test_a_commit_ends_a_bundle_and_the_first_is_reported_once():
    b = FlowBatches()
    b.add(1, "a")
    b.add(1, "b")
    first = b.take(1)
    b.sent(first, [10, 11, 12])
    b.add(1, "c")
    b.add(1, "d")
    second = b.take(1)
    b.sent(second, [13, 14, 15])
    assert b.committed(1, first.bundle_id) is first
    assert b.committed(1, second.bundle_id) is None  # not the first any more
    assert b.in_flight == {}
    assert b.committed(1, 999) is None  # not ours


def test_a_refused_bundle_is_found_by_any_of_its_xids():
    b = FlowBatches()
    b.add(1, "a")
    b.add(1, "b")
    bundle = b.take(1)
    b.sent(bundle, [20, 21, 22])
    assert b.refused(2, 21, unsupported=False) is None  # another switch's xid
    assert b.refused(1, 99, unsupported=False) is None  # not one of ours
    assert b.refused(1, 21, unsupported=False) is bundle
    assert b.refused(1, 22, unsupported=False) is None  # handled once
    b.add(1, "c")
    b.add(1, "d")
    assert b.take(1).bundle_id != 0  # a failed bundle does not stop bundles


def test_a_switch_without_bundles_gets_flow_mods_one_by_one_until_it_reconnects():
    b = FlowBatches()
    b.add(1, "a")
    b.add(1, "b")
    bundle = b.take(1)
    b.sent(bundle, [30, 31, 32])
    assert b.refused(1, 30, unsupported=True) is bundle
    b.add(1, "c")
    b.add(1, "d")
    assert b.take(1).bundle_id == 0
    b.switch_gone(1)
    b.add(1, "e")
    b.add(1, "f")
    assert b.take(1).bundle_id != 0


def test_a_switch_gone_leaves_nothing_behind():
    b = FlowBatches()
    b.add(1, "a")
    b.add(1, "b")
    b.sent(b.take(1), [1, 2, 3])
    b.add(1, "waiting")
    b.add(2, "kept")
    b.switch_gone(1)
    assert b.dpids() == [2] and b.in_flight == {}


def test_a_claim_waits_behind_the_flow_mods_waiting_for_its_switch():
    """Sent before them, the claimant's next packet could beat its allow flow into the
    switch and be dropped as spoofed; with nothing waiting it goes at once."""
    b = FlowBatches()
    assert not b.hold(1, "claim0") and b.take(1) is None  # nothing waits: send it now
    b.add(1, "fm1")
    b.add(1, "fm2")
    assert b.hold(1, "claim1") and b.hold(1, "claim2")
    assert not b.hold(2, "elsewhere")  # another switch's flow-mods do not hold it
    bundle = b.take(1)
    assert bundle.msgs == ["fm1", "fm2"] and bundle.after == ["claim1", "claim2"]
    assert b.take(1) is None
    b.add(1, "fm3")
    assert b.hold(1, "claim3")
    b.switch_gone(1)  # a new connection: nothing of the old one goes
    assert b.take(1) is None
