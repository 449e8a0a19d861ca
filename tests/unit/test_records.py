"""Records, confinement counting, statistics and figures: plain functions on rows."""

import math

import pytest

from experiments import figures, records
from experiments.records import Cell

TAG = 0x7A7A
T = {"10.1.0.10", "10.3.0.20"}


def row(src, sport, dst, dport, subtypes, flags="0x0010", ip_id="0x0001"):
    return (src, str(sport), dst, str(dport), ip_id, flags, subtypes)


def test_confinement_counts_legit_control_options_by_subflow():
    rows = [
        row("10.2.0.10", 40000, "10.3.0.20", 5201, "0", flags="0x0002"),  # untrusted first
        row("10.3.0.20", 5201, "10.2.0.10", 40000, "3"),  # ADD_ADDR on it
        row("10.1.0.10", 40001, "10.3.0.20", 5201, "1", flags="0x0002"),  # trusted join
        row("10.3.0.20", 5201, "10.1.0.10", 40001, "1", flags="0x0012"),
        row("10.1.0.10", 40001, "10.3.0.20", 5201, "9,3"),  # ADDR_TRUST + echo
        row("10.1.0.10", 40001, "10.3.0.20", 5201, "2"),  # DSS: not control
        row("10.3.0.20", 5201, "10.2.0.10", 40000, "4", ip_id="0x7a7a"),  # a forgery
        row("10.3.0.20", 5201, "10.2.0.10", 51234, "8", flags="0x0014"),  # RST to a forged SYN
    ]
    c = records.confinement(rows, T, TAG)
    assert c == {"control_total": 3, "control_trusted": 2, "handshake_total": 3,
                 "handshake_trusted": 2}  # fmt: skip
    assert records.confinement(rows, None, TAG)["control_trusted"] == 0


def test_wilson_interval():
    lo, hi = records.wilson(0, 3)
    assert lo == 0 and 0.5 < hi < 0.6
    lo, hi = records.wilson(3, 3)
    assert 0.4 < lo < 0.5 and hi == 1
    assert all(math.isnan(x) for x in records.wilson(0, 0))


def record(cell: str, trial: int, success: bool, goodput=100.0, **kw) -> dict:
    c = Cell.parse(cell)
    r = {"cell": c.key, "trial": trial, "seed": 1, **vars(c), "success": success,
         "evidence": "x", "forged_sent": 1, "subflows_seen": 1, "keys_known": True,
         "transfer_ok": True, "bytes_match": True, "goodput_mbps": goodput, "connect_ms": 1.0,
         "control_total": 4, "control_trusted": 3, "handshake_total": 5,
         "handshake_trusted": 2, "attack_seconds": 0.3, "trial_seconds": 6.0,
         "success_moment": "", "success_shape": "", "attempts": 1, "attempt": 1,
         "retry_reason": ""}  # fmt: skip
    r.update(kw)
    return r


def test_records_round_trip_and_summarize(tmp_path):
    path = tmp_path / "records.csv"
    rows = [record("savi/trusted/unprotected/rm_addr/eavesdrop", t, t == 0, 100.0 + t)
            for t in range(3)]  # fmt: skip
    rows.append(record("none/vanilla/protected/fastclose/blind", 0, False, goodput=None,
                       transfer_ok=False, bytes_match=False, control_trusted=0))  # fmt: skip
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


def test_records_of_runs_before_the_adaptive_attacker_still_read(tmp_path):
    """Old records.csv files lack the adaptive and traceability columns: defaults."""
    old_columns = records.COLUMNS[: records.COLUMNS.index("success_moment")]
    path = tmp_path / "records.csv"
    r = record("savi/trusted/unprotected/rm_addr/eavesdrop", 0, True)
    path.write_text(",".join(old_columns) + "\n" + ",".join(str(r[c]) for c in old_columns)
                    + "\n")  # fmt: skip
    (back,) = records.read(path)
    assert (back["attempts"], back["attempt"], back["success_shape"]) == (1, 1, "")


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


def test_figures_are_drawn_from_records_only(tmp_path):
    for cell in ("savi/enforce/unprotected/rm_addr/eavesdrop",
                 "none/vanilla/protected/add_addr/blind"):  # fmt: skip
        records.append(tmp_path / "records.csv", record(cell, 0, cell.startswith("none")))
    paths = figures.draw(tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"{n}.{e}" for n in ("attack_success", "confinement", "cost") for e in ("pdf", "png")
    )
    assert all(p.stat().st_size > 1000 for p in paths)
    md = (tmp_path / "summary.md").read_text()
    assert "eavesdrop attacker on the unprotected network" in md
    assert "| savi/enforce | — | 0/1 | — | — | — |" in md  # rm_addr is the second column
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
