"""Records, confinement counting, statistics and figures: plain functions on rows."""

import csv
import math

import pytest

from experiments import figures, records
from experiments.records import Cell


def test_wilson_interval():
    lo, hi = records.wilson(0, 3)
    assert lo == 0 and 0.5 < hi < 0.6
    lo, hi = records.wilson(3, 3)
    assert 0.4 < lo < 0.5 and hi == 1
    assert all(math.isnan(x) for x in records.wilson(0, 0))


def record(cell: str, trial: int, success: bool, goodput=100.0, **kw) -> dict:
    c = Cell.parse(cell)
    r = {
        "cell": c.key,
        "trial": trial,
        "seed": 1,
        **vars(c),
        "success": success,
        "evidence": "x",
        "forged_sent": 1,
        "subflows_seen": 1,
        "keys_known": True,
        "transfer_ok": True,
        "bytes_match": True,
        "goodput_mbps": goodput,
        "connect_ms": 1.0,
        "control_total": 4,
        "control_trusted": 3,
        "handshake_total": 5,
        "handshake_trusted": 2,
        "attack_seconds": 0.3,
        "trial_seconds": 6.0,
        "success_moment": "",
        "success_shape": "",
        "attempts": 1,
        "attempt": 1,
        "retry_reason": "",
        "confinement": {"addr_trust/after": [2, 2], "add_addr/before": [0, 1]},
        "trusted_up_ms": 12.5,
        "early_shape": "",
        "early_ms": None,
        "attempt_log": "",
        "replayed": "",
        "window_drops": 0,
        "attempt_refusals": "",
    }
    r.update(kw)
    return r


def test_records_round_trip_and_summarize(tmp_path):
    path = tmp_path / "records.csv"
    rows = [
        record("savi/trusted/unprotected/rm_addr/eavesdrop", t, t == 0, 100.0 + t) for t in range(3)
    ]
    rows.append(
        record(
            "none/vanilla/protected/fastclose/blind",
            0,
            False,
            goodput=None,
            transfer_ok=False,
            bytes_match=False,
            control_trusted=0,
        )
    )
    for r in rows:
        records.append(path, r)
    back = records.read(path)
    assert back == rows
    s = records.summarize(back)
    cell = s["cells"]["savi/trusted/unprotected/rm_addr/eavesdrop"]
    assert (cell["trials"], cell["successes"], cell["transfers_intact"]) == (3, 1, 3)
    cfg = s["configurations"]["savi/trusted"]
    assert cfg["confinement"] == 0.75 and cfg["goodput_mbps_median"] == 101.0
    assert cfg["goodput_mbps_iqr"] == (100.5, 101.5)
    assert s["configurations"]["none/vanilla"]["goodput_mbps_median"] is None
    by_cat = cfg["by_category"]
    assert by_cat["addr_trust"]["after"] | {"ci95": None} == {
        "trusted": 6,
        "total": 6,
        "share": 1.0,
        "trials_with": 3,
        "ci95": None,
    }
    assert by_cat["add_addr"]["before"]["share"] == 0.0
    assert by_cat["addr_trust"]["after"]["ci95"] == (1.0, 1.0)
    assert set(by_cat) == {"addr_trust", "add_addr"}


def test_records_of_runs_before_the_adaptive_attacker_still_read(tmp_path):
    """Old records.csv files lack the adaptive and traceability columns: defaults."""
    old_columns = records.COLUMNS[: records.COLUMNS.index("success_moment")]
    path = tmp_path / "records.csv"
    r = record("savi/trusted/unprotected/rm_addr/eavesdrop", 0, True)
    path.write_text(",".join(old_columns) + "\n" + ",".join(str(r[c]) for c in old_columns) + "\n")
    (back,) = records.read(path)
    assert (back["attempts"], back["attempt"], back["success_shape"]) == (1, 1, "")
    assert back["window_drops"] is None  # not counted then: unknown, not zero


def test_a_file_begun_by_an_earlier_version_keeps_its_columns(tmp_path):
    """A resumed run appends to a records.csv whose header lacks a newer column: each
    new row is written under that header (the new column left out), never shifted."""
    path = tmp_path / "records.csv"
    older = records.COLUMNS[: records.COLUMNS.index("attempt_refusals")]
    cell = "savi/trusted/unprotected/rm_addr/adaptive"
    first = record(cell, 0, True, attempt_log="early/plain:1")
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=older, extrasaction="ignore")
        w.writeheader()
        w.writerow({**first, "confinement": "{}"})
    later = record(cell, 1, False, attempt_log="early/plain:0", attempt_refusals="x: -")
    records.append(path, later)
    assert records.columns_of(path) == older
    back = records.read(path)
    assert [r["trial"] for r in back] == [0, 1]
    assert back[1]["attempt_log"] == "early/plain:0" and back[1]["window_drops"] == 0
    assert back[1]["attempt_refusals"] == ""  # not recorded: the file has no such column
    fresh = tmp_path / "new.csv"
    records.append(fresh, later)
    assert records.columns_of(fresh) == records.COLUMNS
    assert records.read(fresh)[0]["attempt_refusals"] == "x: -"


def test_transfers_with_window_drops_are_counted_and_named_in_the_summary(tmp_path):
    """The kernel's stall with userspace TSO slows or breaks a trial's transfer whatever
    the attack did: each configuration says in how many trials b dropped data beyond its
    window, and summary.md names them; a run without any says nothing of it."""
    path = tmp_path / "records.csv"
    cell = "savi/trusted/unprotected/rm_addr/eavesdrop"
    for t, drops in enumerate((0, 12, 0, 3)):
        records.append(path, record(cell, t, False, 100.0 + t, window_drops=drops))
    records.append(path, record("none/vanilla/protected/fastclose/blind", 0, False))
    back = records.read(path)
    assert [r["window_drops"] for r in back] == [0, 12, 0, 3, 0]
    s = records.summarize(back)
    assert s["configurations"]["savi/trusted"]["transfers_with_window_drops"] == 2
    assert s["configurations"]["none/vanilla"]["transfers_with_window_drops"] == 0
    md = figures.tables(s)
    assert "beyond the window it had announced" in md and "savi/trusted: 2 of 4" in md
    assert "none/vanilla:" not in md.split("beyond the window")[1]
    quiet = records.summarize([r for r in back if not r["window_drops"]])
    assert "beyond the window" not in figures.tables(quiet)
    # The cost figure draws those trials apart (intact transfers only; old runs: plain).
    rows = [*back, record(cell, 9, False, goodput=None, transfer_ok=False, window_drops=5)]
    rows.append(record(cell, 10, False, goodput=70.0, window_drops=None))
    assert figures.cost_points(rows, "savi/trusted", "goodput_mbps") == (
        [100.0, 102.0, 70.0],
        [101.0, 103.0],
    )
    assert len(figures.cost(rows, tmp_path)) == 2


def test_a_record_missing_a_column_is_refused(tmp_path):
    r = record("savi/trusted/unprotected/rm_addr/eavesdrop", 0, True)
    del r["evidence"]
    with pytest.raises(ValueError, match="evidence"):
        records.append(tmp_path / "records.csv", r)


def test_cells_parse():
    c = Cell.parse("savi+ingress/enforce/protected/join_flood/blind")
    assert (c.coverage, c.configuration) == ("savi+ingress", "savi+ingress/enforce")
    with pytest.raises(ValueError, match="COVERAGE/MODE"):
        Cell.parse("savi/enforce")


def test_ipv6_cells_have_their_own_key_and_configuration():
    c = Cell.parse("savi/enforce/unprotected/rm_addr/adaptive/v6")
    assert (c.family, c.configuration) == ("v6", "savi/enforce/v6")
    assert c.key == "savi/enforce/unprotected/rm_addr/adaptive/v6"
    v4 = Cell.parse("savi/enforce/unprotected/rm_addr/adaptive")
    assert v4.family == "v4" and v4.key == "savi/enforce/unprotected/rm_addr/adaptive"
    assert Cell.parse("savi/enforce/unprotected/rm_addr/adaptive/v4") == v4
    with pytest.raises(ValueError, match="FAMILY one of v4, v6"):
        Cell.parse("savi/enforce/unprotected/rm_addr/adaptive/v5")


def test_ipv6_trials_are_summarized_and_drawn_apart_from_ipv4_ones(tmp_path):
    """Old records (no family column) read as IPv4; IPv6 cells get their own rows."""
    path = tmp_path / "records.csv"
    v4 = record("savi/enforce/unprotected/rm_addr/adaptive", 0, False)
    v6 = record("savi/enforce/unprotected/rm_addr/adaptive/v6", 0, True)
    for r in (v4, v6):
        records.append(path, r)
    old = tmp_path / "old.csv"
    with path.open(newline="") as f, old.open("w", newline="") as g:
        rows = list(csv.DictReader(f))
        w = csv.DictWriter(g, [c for c in records.COLUMNS if c != "family"], extrasaction="ignore")
        w.writeheader()
        w.writerow(rows[0])
    assert records.read(old)[0]["family"] == "v4"
    s = records.summarize(records.read(path))
    assert set(s["configurations"]) == {"savi/enforce", "savi/enforce/v6"}
    assert s["configurations"]["savi/enforce/v6"]["attack_success_rate"] == 1.0
    assert s["configurations"]["savi/enforce"]["attack_success_rate"] == 0.0
    figures.draw(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "| savi/enforce | — | 0/1 [0.00–0.79] |" in md
    assert "| savi/enforce/v6 | — | 1/1 [0.21–1.00] |" in md


def test_figures_are_drawn_from_records_only(tmp_path):
    for cell in (
        "savi/enforce/unprotected/rm_addr/eavesdrop",
        "none/vanilla/protected/add_addr/blind",
    ):
        records.append(tmp_path / "records.csv", record(cell, 0, cell.startswith("none")))
    paths = figures.draw(tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"{n}.{e}" for n in ("attack_success", "confinement", "cost") for e in ("pdf", "png")
    )
    assert all(p.stat().st_size > 1000 for p in paths)
    md = (tmp_path / "summary.md").read_text()
    assert "eavesdrop attacker on the unprotected network" in md
    # rm_addr is the second column; Wilson interval of 0/1; pooled over the attacks
    assert "| savi/enforce | — | 0/1 [0.00–0.79] | — | — | — | 0/1 [0.00–0.79] |" in md
    assert "Footnote: blind attacker" in md and "1/1 successes over 1 cells" in md
    assert "| savi/enforce | addr_trust | — | 2/2 (1.00) |" in md
    assert "provenance unknown" in md
    (tmp_path / "provenance.json").write_text(
        '{"git_commit": "0123456789abcdef", "kernel": "6.1.0-x", "date": "2026-12-02T10:00:00",'
        ' "command": "python -m experiments.run", "git_dirty": false}'
    )
    figures.draw(tmp_path)
    assert (
        "commit 0123456789 · kernel 6.1.0-x · 2026-12-02" in (tmp_path / "summary.md").read_text()
    )
    with pytest.raises(ValueError, match="no records"):
        figures.draw(tmp_path / "empty")


def test_wilson_matches_the_formula():
    lo, hi = records.wilson(1, 20)
    z, p, n = 1.959963984540054, 1 / 20, 20
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert math.isclose(lo, centre - half) and math.isclose(hi, centre + half)


def test_pooled_ratio_bootstrap():
    assert records.pooled_ratio_ci([1], [2]) is None  # one trial: no interval
    assert records.pooled_ratio_ci([3, 3], [4, 4]) == (0.75, 0.75)  # no spread
    lo, hi = records.pooled_ratio_ci([10, 0, 5, 9, 7, 8], [10, 10, 10, 10, 10, 10])
    assert 0 < lo < 39 / 60 < hi < 1
    assert records.pooled_ratio_ci([10, 0, 5, 9, 7, 8], [10] * 6) == (lo, hi)  # seeded


def test_attempt_logs_become_a_table_of_shapes_and_moments(tmp_path):
    """Only cells whose every attempt was made get the table: nothing worked, or the
    attacker went on after a success (exhaustive)."""
    logs = {
        "savi/enforce/unprotected/mp_prio/adaptive": [
            "early/plain:0 bulk/plain:0 lull/plain:0",
            "early/rst:0 bulk/plain:0 lull/plain:0",
            # a shape with no room for the option: not made, not a failure
            "early/behind_dss:- bulk/plain:0 bulk/behind_dss:- lull/plain:0",
        ],
        "none/vanilla/unprotected/mp_prio/adaptive": [
            "early/plain:1 bulk/plain:1 lull/plain:0",
        ],
        "savi/trusted/unprotected/mp_prio/adaptive": ["early/plain:1"],  # stopped at once
    }
    for cell, cell_logs in logs.items():
        for t, log in enumerate(cell_logs):
            records.append(
                tmp_path / "records.csv",
                record(
                    cell,
                    t,
                    ":1" in log,
                    attempt_log=log,
                    success_moment="early" if ":1" in log else "",
                ),
            )
    s = records.summarize(records.read(tmp_path / "records.csv"))
    enforce = s["cells"]["savi/enforce/unprotected/mp_prio/adaptive"]
    assert enforce["attempts"] == {
        "early/plain": [0, 1],
        "early/rst": [0, 1],
        "bulk/plain": [0, 3],
        "lull/plain": [0, 3],
    }
    assert not enforce["exhaustive"]
    assert s["cells"]["none/vanilla/unprotected/mp_prio/adaptive"]["exhaustive"]
    md = figures.tables(s)
    assert "Attempts of savi/enforce/unprotected/mp_prio/adaptive" in md
    assert "| plain | 0/1 | 0/3 | 0/3 |" in md and "| rst | 0/1 | — | — |" in md
    assert "behind_dss" not in md  # never tried
    assert "| plain | 1/1 | 1/1 | 0/1 |" in md  # the vanilla host, exhaustively
    assert "Attempts of savi/trusted" not in md


def test_an_outcome_logs_every_attempt():
    from experiments.adaptive import Attempt, Outcome

    o = Outcome(
        log=[
            (Attempt("early", "plain"), False),
            (Attempt("bulk", "behind_dss"), None),  # no room for the option
            (Attempt("bulk", "rst"), True),
        ]
    )
    assert o.log_text() == "early/plain:0 bulk/behind_dss:- bulk/rst:1"
