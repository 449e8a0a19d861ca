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
