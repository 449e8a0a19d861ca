"""The adaptive attacker's plan."""

import pytest

from experiments.adaptive import DESTRUCTIVE, FLOOD, MOMENTS, SHAPE_ORDER, Attempt, plan
from experiments.shapes import SHAPES


def test_every_shape_at_every_moment_gentle_first():
    attempts = plan("rm_addr")
    assert len(attempts) == len(MOMENTS) * len(SHAPES)
    assert [a.moment for a in attempts[:: len(SHAPES)]] == list(MOMENTS)
    for i in range(len(MOMENTS)):
        shapes = [a.shape for a in attempts[i * len(SHAPES) : (i + 1) * len(SHAPES)]]
        assert set(shapes) == set(SHAPES) and shapes[-len(DESTRUCTIVE) :] == list(DESTRUCTIVE)
    assert SHAPE_ORDER[0] == "plain"


def test_the_flood_strikes_in_the_lull_and_moments_can_be_chosen():
    assert plan("join_flood") == [Attempt("lull", FLOOD)]
    assert plan("join_flood", ("early",)) == []
    assert {a.moment for a in plan("mp_prio", ("bulk",))} == {"bulk"}
    with pytest.raises(ValueError, match="unknown moments"):
        plan("mp_prio", ("dawn",))
