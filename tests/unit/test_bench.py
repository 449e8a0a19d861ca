"""The benchmark harness's arithmetic, table and figures, on made-up numbers."""

import pytest

from experiments import bench, records


def test_percentiles_interpolate_between_ranks():
    assert records.percentile([3, 1, 2], 50) == 2
    assert records.percentile([1, 2, 3, 4], 50) == 2.5
    assert records.percentile(list(range(101)), 99) == 99
    assert records.percentile([], 50) is None


def test_compare_is_a_ratio_of_medians_with_the_spread():
    row = bench.compare("x", "y", [90, 100, 95], [100, 110, 100], "Mbit/s", ">= 0.97",
                        lambda r: r >= 0.97)  # fmt: skip
    assert row["ratio"] == pytest.approx(0.95)
    assert not row["met"]
    assert row["candidate"] == {"median": 95, "min": 90, "max": 100, "n": 3,
                                "values": [90, 100, 95]}  # fmt: skip


def test_linear_fit_recovers_a_line_and_says_how_far_off_it_is():
    fit = bench.linear_fit([10, 50, 100, 200], [2 + 0.1 * x for x in (10, 50, 100, 200)])
    assert fit["per_host"] == pytest.approx(0.1) and fit["intercept"] == pytest.approx(2)
    assert fit["worst_relative_residual"] == pytest.approx(0, abs=1e-9)
    bent = bench.linear_fit([10, 50, 100, 200], [1, 1, 1, 40])
    assert bent["worst_relative_residual"] > 0.25


ROWS = [
    bench.compare("path manager overhead on data", "goodput", [560, 570], [600, 590], "Mbit/s",
                  ">= 0.97", lambda r: r >= 0.97),
    {"what": "binding set-up latency", "measured_as": "claim to packet", "unit": "ms",
     "levels": [{"existing_bindings": n, "p50_ms": 1.5, "p99_ms": 3.0, "claims": 100,
                 "never_delivered": 0} for n in (1, 100, 1000, 10000)],
     "p99_worst_ms": 3.0, "target": "p99 <= 20 ms", "met": True},
    {"what": "trust propagation: x", "unit": "s", "n": 10, "p50": 3.1, "p99": 5.9,
     "values": [], "target": "well under one second", "met": False},
    {"what": "testbed scale", "measured_as": "m", "unit": "s, MB", "target": "linear",
     "sizes": [{"hosts": h, "extra_hosts": h - 6, "start_s": h / 10, "stop_s": h / 20,
                "memory_mb": h * 2} for h in (16, 56, 106, 206)], "met": True},
]  # fmt: skip


def test_the_table_has_a_row_per_result():
    lines = bench.table(ROWS).splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert "| 0.95 | >= 0.97 | no |" in lines[2]
    assert "10000: p50 1.5 / p99 3.0" in lines[3]
    assert "p50 3.10 s, p99 5.90 s" in lines[4] and lines[4].endswith("| no |")
    assert "206 hosts: 20.6 s / 10.3 s / 412 MB" in lines[5]


def test_figures(tmp_path):
    names = sorted(p.name for p in bench.draw(tmp_path, ROWS))
    assert names == sorted(f"{n}.{e}" for n in ("ratios", "binding_latency", "scale")
                           for e in ("pdf", "png"))  # fmt: skip
