"""The run's order of trials: one testbed per coverage, rounds of trials, host modes in a
seeded random order per round."""

from experiments.records import Cell
from experiments.run import plan

CELLS = [
    Cell.parse(f"{cov}/{mode}/unprotected/rm_addr/eavesdrop")
    for cov in ("savi", "none")
    for mode in ("vanilla", "trusted", "enforce")
]


def test_every_trial_once_coverage_by_coverage_round_by_round():
    order = plan(CELLS, 3, set(), seed=7)
    assert sorted((c.key, t) for c, t in order) == sorted(
        (c.key, t) for c in CELLS for t in range(3)
    )
    assert [c.coverage for c, _ in order] == ["none"] * 9 + ["savi"] * 9
    assert [t for _, t in order[:9]] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_the_mode_order_is_random_per_round_and_reproducible_from_its_seed():
    orders = {tuple(c.mode for c, _ in plan(CELLS, 20, set(), seed=s)) for s in range(5)}
    assert len(orders) == 5  # seeds give different orders
    assert plan(CELLS, 20, set(), seed=3) == plan(CELLS, 20, set(), seed=3)
    firsts = {c.mode for c, t in plan(CELLS, 20, set(), seed=3)[::3]}
    assert firsts == {"vanilla", "trusted", "enforce"}  # no mode always runs first


def test_done_trials_are_left_out():
    done = {(CELLS[0].key, 0), (CELLS[4].key, 2)}
    order = plan(CELLS, 3, done, seed=1)
    assert len(order) == 16 and not {(c.key, t) for c, t in order} & done


def test_cells_can_have_their_own_trial_counts():
    counts = {c.key: 3 for c in CELLS}
    counts[CELLS[0].key] = 5
    order = plan(CELLS, counts, set(), seed=2)
    assert sum(1 for c, _ in order if c == CELLS[0]) == 5
    assert [t for c, t in order if c == CELLS[0]] == [0, 1, 2, 3, 4]
    assert len(order) == 5 * 3 + 5


def test_the_default_configuration_has_twenty_trials_in_every_headline_cell():
    from experiments.run import CONFIGS, CONTROL, HEADLINE, trials_per_cell

    counts = trials_per_cell(CONFIGS["default"])
    assert {k: n for k, n in counts.items() if k in HEADLINE} == {k: 20 for k in HEADLINE}
    assert all(counts[k] >= 3 for k in CONTROL)  # positive controls: each worked every time
    # IPv6: the same headline and control cells, fewer trials
    assert {k: n for k, n in counts.items() if k.endswith("/v6")} == {
        **{f"{k}/v6": 10 for k in HEADLINE},
        **{f"{k}/v6": 3 for k in CONTROL},
    }
    assert set(trials_per_cell(CONFIGS["full"]).values()) == {30}


def test_a_broken_trial_names_the_receivers_window_drops(monkeypatch, tmp_path, capsys):
    """A transfer the attack does not explain ends the run after a retry; if b dropped
    data beyond its window (the kernel's stall with userspace TSO), the message says so,
    and without drops it does not."""
    import pytest

    from experiments import run, trial

    cell = Cell.parse("savi/trusted/unprotected/mp_prio/eavesdrop")
    broken = {"attack": "mp_prio", "success": False, "attempt_log": "", "transfer_ok": False}
    broken |= {"evidence": "MPPrioRx+0", "transfer_error": "client: timed out"}
    for drops, named in ((7, True), (0, False)):
        monkeypatch.setattr(
            trial, "run_trial", lambda *a, d=drops, **k: broken | {"window_drops": d}
        )
        with pytest.raises(SystemExit) as stop:
            run._trial_or_fail(None, cell, 3, tmp_path, None)
        said = str(stop.value) + capsys.readouterr().err
        assert "the attack does not explain it" in str(stop.value)
        assert ("b dropped 7 segment(s) beyond the window" in said) is named
        assert ("beyond the window" in said) is named
