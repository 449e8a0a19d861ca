"""The benchmark harness's arithmetic, table and figures, on made-up numbers."""

import os

import pytest

from experiments import bench, records


def test_percentiles_interpolate_between_ranks():
    assert records.percentile([3, 1, 2], 50) == 2
    assert records.percentile([1, 2, 3, 4], 50) == 2.5
    assert records.percentile(list(range(101)), 99) == 99
    assert records.percentile([], 50) is None


def test_compare_is_a_ratio_of_medians_with_the_spread_and_an_interval():
    row = bench.compare(
        "x", "y", [90, 100, 95], [100, 110, 100], "Mbit/s", bench.Target(">=", 0.97)
    )
    assert row["ratio"] == pytest.approx(0.95)
    assert row["candidate"] == {
        "median": 95,
        "min": 90,
        "max": 100,
        "n": 3,
        "values": [90, 100, 95],
    }
    low, high = row["interval"]
    assert low <= row["ratio"] <= high and row["pairs"] == 3
    assert row["target"] == ">= 0.97"


@pytest.mark.parametrize(
    "target, interval, verdict",
    [
        ((">=", 0.97), (0.98, 1.01), "met"),
        ((">=", 0.97), (0.90, 0.96), "missed"),
        ((">=", 0.97), (0.95, 0.99), "not resolved"),
        (("<=", 1.5), (1.1, 1.4), "met"),
        (("<=", 1.5), (1.6, 9.0), "missed"),
        (("<=", 1.5), (1.2, 1.7), "not resolved"),
    ],
)
def test_a_verdict_needs_the_whole_interval_on_one_side(target, interval, verdict):
    assert bench.Target(*target).verdict(*interval) == verdict


def test_the_interval_narrows_with_pairs_and_is_reproducible():
    """Noisy pairs around a true ratio of 0.95: a few pairs leave the target of 0.97
    unresolved, many resolve it; the same numbers give the same interval."""
    import random

    rng = random.Random(1)
    base = [rng.gauss(500, 60) for _ in range(60)]
    cand = [b * 0.95 * rng.gauss(1, 0.01) for b in base]
    few = bench.compare("x", "y", cand[:4], base[:4], "Mbit/s", bench.Target(">=", 0.97))
    many = bench.compare("x", "y", cand, base, "Mbit/s", bench.Target(">=", 0.97))
    assert many["interval"][1] - many["interval"][0] < few["interval"][1] - few["interval"][0]
    assert many["verdict"] == "missed"
    assert bench.ratio_interval(cand, base) == bench.ratio_interval(cand, base)


def test_an_interval_needs_pairs():
    with pytest.raises(ValueError, match="pairs"):
        bench.ratio_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="pairs"):
        bench.ratio_interval([1.0], [1.0])
    with pytest.raises(ValueError):
        bench.Target("==", 1.0)


def test_linear_fit_recovers_a_line_and_says_how_far_off_it_is():
    fit = bench.linear_fit([10, 50, 100, 200], [2 + 0.1 * x for x in (10, 50, 100, 200)])
    assert fit["per_host"] == pytest.approx(0.1) and fit["intercept"] == pytest.approx(2)
    assert fit["worst_relative_residual"] == pytest.approx(0, abs=1e-9)
    bent = bench.linear_fit([10, 50, 100, 200], [1, 1, 1, 40])
    assert bent["worst_relative_residual"] > 0.25


ROWS = [
    bench.compare(
        "path manager overhead on data",
        "goodput",
        [560, 570],
        [600, 590],
        "Mbit/s",
        bench.Target(">=", 0.97),
    ),
    {
        "what": "binding set-up latency",
        "measured_as": "claim to packet",
        "unit": "ms",
        "levels": [
            {
                "existing_bindings": n,
                "p50_ms": 1.5,
                "p99_ms": 3.0,
                "claims": 100,
                "never_delivered": 0,
            }
            for n in (1, 100, 1000, 10000)
        ],
        "p99_worst_ms": 3.0,
        "target": "p99 <= 20 ms",
        "met": True,
    },
    {
        "what": "trust propagation: x",
        "unit": "s",
        "n": 10,
        "p50": 3.1,
        "p99": 5.9,
        "values": [],
        "target": "well under one second",
        "met": False,
    },
    {
        "what": "testbed scale",
        "measured_as": "m",
        "unit": "s, MB",
        "target": "linear",
        "sizes": [
            {
                "hosts": h,
                "extra_hosts": h - 6,
                "start_s": h / 10,
                "stop_s": h / 20,
                "memory_mb": h * 2,
            }
            for h in (16, 56, 106, 206)
        ],
        "met": True,
    },
]


def test_the_table_has_a_row_per_result():
    lines = bench.table(ROWS).splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert "| 0.95 [0.93–0.97] | >= 0.97 | missed |" in lines[2]
    assert "2 pairs" in lines[2]
    assert "10000: p50 1.5 / p99 3.0" in lines[3]
    assert "p50 3.10 s, p99 5.90 s" in lines[4] and lines[4].endswith("| missed |")
    assert "206 hosts: 20.6 s / 10.3 s / 412 MB" in lines[5]


def test_the_goodput_profile_has_its_row_per_mode_and_cpu():
    profile = {
        "what": "goodput profile (diagnostic)",
        "measured_as": "m",
        "rounds": 2,
        "cpus": {"hosts": [0], "switches": [1]},
        "profiles": {
            mode: {
                "goodput_mbps": mbps,
                "cpus": {
                    "0": {"idle": 0.0, "hooks": hooks, "agents": agents, "other": 99.0},
                    "1": {"idle": 10.0, "hooks": 0.5, "agents": 0.0, "other": 89.5},
                },
            }
            for mode, mbps, hooks, agents in (
                ("vanilla", 3000, 0.3, 0.0),
                ("trusted", 2950, 1.0, 0.7),
            )
        },
    }
    (line,) = bench.table([profile]).splitlines()[2:]
    assert "m, 2 rounds" in line
    assert "vanilla: 3000 Mbit/s, CPU 0 idle 0.0 % hooks 0.3 % agents 0.0 %" in line
    assert "trusted: 2950 Mbit/s, CPU 0 idle 0.0 % hooks 1.0 % agents 0.7 %" in line


def test_figures(tmp_path):
    names = sorted(p.name for p in bench.draw(tmp_path, ROWS))
    assert names == sorted(
        f"{n}.{e}" for n in ("ratios", "binding_latency", "scale") for e in ("pdf", "png")
    )


def test_the_knee_is_the_highest_load_kept_up_with_below_any_that_was_not():
    _knee = bench._knee

    assert _knee({250: 250.0, 500: 460.0, 1000: 700.0, 2000: 1990.0}) == 500
    assert _knee({250: 100.0, 500: 500.0}) is None
    assert _knee({250: 250.0, 500: 499.0}) == 500


def test_pss_of_processes_counts_this_one_and_not_gone_ones():
    import os

    pss_bytes = bench.pss_bytes

    assert pss_bytes([os.getpid()]) > 1_000_000
    assert pss_bytes([2**22 + 12345]) == 0  # above pid_max's default: no such process


def test_the_memory_group_charges_what_starts_in_it_and_is_left_as_found():
    import os
    import subprocess
    from pathlib import Path

    before = Path("/proc/self/cgroup").read_text()
    group = bench.MemoryGroup(f"tmptcp-test-{os.getpid()}")
    try:
        if group.path is not None:  # a machine without a usable memory cgroup: PSS only
            used = group.usage()
            code = (
                "import sys; b = bytearray(64 << 20); print('ready', flush=True); sys.stdin.read()"
            )
            child = subprocess.Popen(
                ["python3", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            try:
                assert child.stdout.readline().strip() == "ready"
                assert group.usage() - used > 48 << 20  # a process started here is charged here
            finally:
                child.kill()
                child.wait(10)
    finally:
        group.close()
    assert group.path is None or not group.path.exists()
    assert Path("/proc/self/cgroup").read_text() == before


def test_an_absolute_target_is_judged_by_the_interval_of_the_median():
    """Line rate has targets of its own (Mbit/s), not ratios: met only when the whole
    interval of the median is past the target, missed only when it is all short of it."""
    fast = bench.absolute(
        "tcp", "t", [3400, 3500, 3600, 3550, 3450], "Mbit/s", bench.Target(">=", 3000)
    )
    assert fast["verdict"] == "met" and fast["target"] == ">= 3000 Mbit/s"
    low, high = fast["median_interval"]
    assert 3400 <= low <= 3500 <= high <= 3600
    assert (
        bench.absolute("tcp", "t", [700, 800, 900], "Mbit/s", bench.Target(">=", 3000))["verdict"]
        == "missed"
    )
    mixed = bench.absolute("tcp", "t", [2000, 2900, 3100, 4000], "Mbit/s", bench.Target(">=", 3000))
    assert mixed["verdict"] == "not resolved"
    line = bench.table([fast]).splitlines()[-1]
    assert "3500 Mbit/s (3400–3600)" in line and "| met |" in line
    with pytest.raises(ValueError):
        bench.median_interval([1.0])


def test_none_above_is_met_only_when_every_sample_keeps_the_bound():
    """ "No set-up above 50 ms" is about the samples themselves: one past it misses it,
    and the row says the slowest and how many went past."""
    kept = bench.none_above("setup", "s", [9.7, 12.5, 10.9], "ms", 50)
    assert kept["verdict"] == "met" and kept["slowest"] == 12.5 and kept["above"] == 0
    line = bench.table([kept]).splitlines()[-1]
    assert "| s, n=3 | slowest 12.5 ms, 0 of 3 above |" in line
    assert line.endswith("| none above 50 ms | met |")
    past = bench.none_above("setup", "s", [9.0, 207.2, 10.1, 50.0], "ms", 50)
    assert past["verdict"] == "missed" and past["above"] == 1 and not past["met"]


def test_a_ratio_is_also_given_over_the_transfers_without_the_receivers_window_drops():
    # The kernel's stall (window drops) hit transfers on both sides: without them the
    # agents cost nothing; the verdict stays the one over all pairs.
    cand = [100.0, 30.0, 101.0, 99.0, 100.0, 98.0]
    base = [100.0, 100.0, 20.0, 100.0, 25.0, 101.0]
    c_drops, b_drops = [0, 5, 0, 0, 0, 0], [0, 0, 3, 0, 9, 0]
    row = bench.compare("x", "y", cand, base, "Mbit/s", bench.Target(">=", 0.99))
    row = bench.without_window_drops(row, c_drops, b_drops)
    assert row["transfers_without_window_drops"] == {"candidate": 5, "baseline": 4}
    assert row["ratio_without_window_drops"] == pytest.approx(1.0)
    low, high = row["interval_without_window_drops"]
    assert low <= 1.0 <= high
    assert row["window_drops"] == {"candidate": c_drops, "baseline": b_drops}
    unfiltered = bench.compare("x", "y", cand, base, "Mbit/s", bench.Target(">=", 0.99))
    assert row["verdict"] == unfiltered["verdict"] and row["ratio"] == unfiltered["ratio"]
    line = bench.table([row]).splitlines()[-1]
    assert "; without the 3 of 12 transfers with window drops (5 and 4 left, unpaired): 1.00 [" in (
        line
    )


def test_window_drops_in_no_transfer_or_too_many_are_said_so():
    row = bench.compare("x", "y", [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "ms", bench.Target("<=", 1.5))
    clean = bench.without_window_drops(row, [0, 0, 0], [0, 0, 0])
    assert "; no window drops |" in bench.table([clean])
    hit = bench.without_window_drops(row, [1, 0, 0], [0, 2, 4])
    assert "ratio_without_window_drops" not in hit  # one clean baseline: no interval
    assert "; window drops in 3 of 6 transfers |" in bench.table([hit])
    with pytest.raises(ValueError, match="one drop count per transfer"):
        bench.without_window_drops(row, [0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="two or more values a side"):
        bench.unpaired_ratio_interval([1.0], [1.0, 2.0])


def test_an_absolute_row_says_how_many_transfers_had_window_drops():
    row = bench.absolute("x", "y", [10.0, 20.0, 30.0], "Mbit/s", bench.Target(">=", 5))
    row["window_drops"] = [0, 4, 0]
    assert "y, n=3, 1 with window drops |" in bench.table([row])


@pytest.fixture
def stand_in_switch(monkeypatch):
    """A process of ours in Open vSwitch's place, with a thread of its own."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import threading, time; threading.Thread(target=time.sleep, "
            "args=(60,)).start(); print(1, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    proc.stdout.readline()  # its second thread runs
    monkeypatch.setattr(bench, "_ovs_pids", lambda: [proc.pid])
    own = os.sched_getaffinity(0)
    yield proc
    proc.kill()
    proc.wait()
    os.sched_setaffinity(0, own)


def _threads_affinity(pid: int) -> list[set[int]]:
    return [os.sched_getaffinity(int(t)) for t in os.listdir(f"/proc/{pid}/task")]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to split")
def test_the_cpu_split_puts_hosts_and_switches_apart_and_puts_them_back(stand_in_switch):
    own = os.sched_getaffinity(0)
    *hosts, last = sorted(own)
    with bench.CpuSplit() as split:
        assert split.layout == {"hosts": hosts, "switches": [last]}
        assert os.sched_getaffinity(0) == set(hosts)  # and what this process starts
        assert _threads_affinity(stand_in_switch.pid) == [{last}, {last}]
        assert split.describe().endswith(f"switches on CPU {last}")
    assert os.sched_getaffinity(0) == own
    assert _threads_affinity(stand_in_switch.pid) == [own, own]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to split")
def test_the_cpu_split_is_undone_when_the_benchmark_fails(stand_in_switch):
    own = os.sched_getaffinity(0)
    with pytest.raises(RuntimeError), bench.CpuSplit():
        raise RuntimeError("the testbed did not start")
    assert os.sched_getaffinity(0) == own
    assert _threads_affinity(stand_in_switch.pid) == [own, own]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to split")
def test_switch_threads_get_back_the_cpus_they_had(stand_in_switch):
    own = os.sched_getaffinity(0)
    first = min(own)
    os.sched_setaffinity(stand_in_switch.pid, {first})  # its main thread only
    with bench.CpuSplit():
        pass
    assert sorted(map(sorted, _threads_affinity(stand_in_switch.pid))) == [[first], sorted(own)]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to split")
def test_switches_that_cannot_be_placed_are_measured_free_and_said_so(
    stand_in_switch, monkeypatch, capsys
):
    """Open vSwitch in a cpuset of its own, say: the bench goes on, unsplit, and its
    rows do not claim a split."""
    own = os.sched_getaffinity(0)
    place = bench._place

    def refused(tid, cpus):
        if cpus != own:
            raise OSError(22, "Invalid argument")
        place(tid, cpus)

    monkeypatch.setattr(bench, "_place", refused)
    with bench.CpuSplit() as split:
        assert split.layout is None and split.describe() == ""
        assert os.sched_getaffinity(0) == own
        assert _threads_affinity(stand_in_switch.pid) == [own, own]
    assert "CPUs not split (" in capsys.readouterr().err
    assert os.sched_getaffinity(0) == own


def test_one_cpu_is_not_split(stand_in_switch):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    before = _threads_affinity(stand_in_switch.pid)
    with bench.CpuSplit() as split:
        assert split.layout is None and split.describe() == ""
        assert _threads_affinity(stand_in_switch.pid) == before


@pytest.mark.parametrize("bad", ["1", "0", "-3", "x"])
def test_a_bad_number_of_pairs_is_refused_before_anything_runs(bad, capsys, monkeypatch):
    monkeypatch.setattr(bench, "run", lambda *a: pytest.fail("the bench ran"))
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--pairs", bad])
    assert exit_.value.code == 2
    assert "--pairs" in capsys.readouterr().err


class Ran(Exception):
    pass


@pytest.mark.skipif(os.geteuid() != 0, reason="the bench starts only as root")
def test_the_number_of_pairs_reaches_every_benchmark(tmp_path, monkeypatch):
    import topologies.builder

    def run(out, only, quick, pairs):
        raise Ran(only, quick, pairs)

    monkeypatch.setattr(bench, "run", run)
    monkeypatch.setattr(topologies.builder, "exit_on_sigterm", lambda: None)
    with pytest.raises(Ran) as ran:
        bench.main(["--only", "path_manager", "--pairs", "40", "--out", str(tmp_path)])
    assert ran.value.args == (["path_manager"], False, 40)


@pytest.mark.parametrize(
    ("quick", "pairs", "expected"), [(False, None, bench.PAIRS), (True, None, 2), (False, 40, 40)]
)
def test_run_gives_each_benchmark_its_pairs(quick, pairs, expected, tmp_path, monkeypatch):
    given = {}

    def path_manager(out, repeat, seconds):
        given["path_manager"] = repeat
        return [{"what": "pm"}]

    def claim_rate(out, hosts, pairs, *rest):
        given["claim_rate"] = pairs
        return [{"what": "claims"}]

    monkeypatch.setattr(bench, "path_manager", path_manager)
    monkeypatch.setattr(bench, "claim_rate", claim_rate)
    rows = bench.run(tmp_path, ["path_manager", "claim_rate"], quick, pairs)
    assert given == {"path_manager": expected, "claim_rate": expected}
    assert [(r["what"], r["bench"]) for r in rows] == [
        ("pm", "path_manager"),
        ("claims", "claim_rate"),
    ]
