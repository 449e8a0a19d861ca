"""The adaptive attacker's plan."""

import pytest

from experiments.adaptive import (
    DESTRUCTIVE,
    FLOOD,
    SHAPE_ORDER,
    Attempt,
    early_shape,
    plan,
)
from experiments.shapes import SHAPES


def test_one_shape_early_then_every_shape_in_the_bulk_and_the_lull_gentle_first():
    attempts = plan("rm_addr", early="fin")
    assert attempts[0] == Attempt("early", "fin")
    rest = attempts[1:]
    assert len(rest) == 2 * len(SHAPES)
    for i, moment in enumerate(("bulk", "lull")):
        part = rest[i * len(SHAPES) : (i + 1) * len(SHAPES)]
        assert {a.moment for a in part} == {moment}
        shapes = [a.shape for a in part]
        assert set(shapes) == set(SHAPES) and shapes[-len(DESTRUCTIVE) :] == list(DESTRUCTIVE)
    assert SHAPE_ORDER[0] == "plain"


def test_thirteen_trials_try_every_shape_early():
    assert {early_shape("mp_prio", t) for t in range(len(SHAPES))} == set(SHAPES)
    assert early_shape("mp_prio", 0) == early_shape("mp_prio", len(SHAPES)) == "plain"
    assert early_shape("join_flood", 3) == ""
    with pytest.raises(ValueError, match="unknown shape"):
        plan("mp_prio", early="sideways")


def test_the_flood_strikes_in_the_lull_and_moments_can_be_chosen():
    assert plan("join_flood") == [Attempt("lull", FLOOD)]
    assert plan("join_flood", ("early",)) == []
    assert {a.moment for a in plan("mp_prio", ("bulk",))} == {"bulk"}
    with pytest.raises(ValueError, match="unknown moments"):
        plan("mp_prio", ("dawn",))


def test_which_broken_transfers_an_attack_explains():
    from experiments.trial import explains_broken_transfer

    def rec(attack, success, log, ok=False):
        return {"attack": attack, "success": success, "attempt_log": log, "transfer_ok": ok}

    assert explains_broken_transfer(rec("mp_prio", False, "early/plain:0", ok=True))
    assert explains_broken_transfer(rec("fastclose", True, "early/plain:1"))
    assert not explains_broken_transfer(rec("fastclose", False, "early/plain:0"))
    assert not explains_broken_transfer(rec("mp_prio", True, "early/payload:1"))
    # A claim's payload, FIN or RST went into b's receive stream.
    assert explains_broken_transfer(rec("claim", False, "early/payload:0 bulk/plain:0"))
    assert not explains_broken_transfer(rec("claim", False, "early/plain:0 bulk/psh:0"))
