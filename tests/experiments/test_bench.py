"""A tiny run of the benchmark harness on the real testbed (`--quick`): it measures,
compares with its baselines and writes its outputs. The numbers are not judged here."""

import json
import os
import subprocess
import sys

import pytest

from experiments.bench import _ovs_pids, perf_works
from experiments.harness import REPO
from experiments.setup_timeline import ALL_UP


def test_quick_bench_measures_and_writes_its_outputs(tmp_path):
    out = tmp_path / "bench"
    # The goodput profile samples with perf (the installer's, on Debian).
    profile = ["--only", "goodput_profile"] if perf_works() else []
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.bench",
            "--quick",
            "--out",
            str(out),
            "--only",
            "path_manager",
            "--only",
            "binding_latency",
            "--only",
            "claim_rate",
            "--only",
            "hook_cost",
            "--only",
            "setup_timeline",
            "--only",
            "classifier_cost",
            "--only",
            "bundle_cost",
            *profile,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / "bench.json").read_text())
    rows = {row["what"]: row for row in result["results"]}
    data = rows["path manager overhead on data"]
    assert data["candidate"]["median"] > 0 and data["baseline"]["median"] > 0
    assert data["packets_through_userspace_per_transfer"]["a"][0] > 0
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:  # the hosts and the switches on CPUs of their own ...
        assert data["cpus"] == {"hosts": cpus[:-1], "switches": cpus[-1:]}
        assert data["measured_as"].endswith(f"switches on CPU {cpus[-1]}")
    for pid in _ovs_pids():  # ... and Open vSwitch on all of them again after
        for tid in os.listdir(f"/proc/{pid}/task"):
            assert os.sched_getaffinity(int(tid)) == set(cpus)
    setup = rows["path manager overhead on set-up"]
    assert setup["candidate"]["n"] == setup["baseline"]["n"] == setup["pairs"] == 2
    low, high = setup["interval"]
    assert low <= setup["ratio"] <= high
    assert setup["verdict"] in ("met", "missed", "not resolved")
    slowest = rows["path manager set-up, slowest"]
    assert slowest["n"] == 2 and slowest["slowest"] == setup["candidate"]["max"]
    assert slowest["verdict"] == ("met" if slowest["slowest"] <= 50 else "missed")
    # The diagnostic splits the agents' cost: hooks / kernel PM and agents / hooks.
    hooks = rows["path manager overhead on data: the agents' kernel hooks"]
    beyond = rows["path manager overhead on data: the agents beyond their hooks"]
    assert hooks["pairs"] == beyond["pairs"] == 2
    assert hooks["cpus"] == beyond["cpus"] == data["cpus"]  # split alike
    assert hooks["candidate"] == beyond["baseline"]  # the same hooks-only transfers
    # ... and the hooks into their parts, against the same kernel-PM transfers.
    for part in ("classifier", "netfilter rules"):
        alone = rows[f"path manager overhead on data: the agents' {part} alone"]
        assert alone["pairs"] == 2 and alone["baseline"] == hooks["baseline"]
        assert alone["candidate"]["median"] > 0
    # The set-up timeline reads both modes' connections from a's capture to the end.
    timeline = rows["set-up timeline (diagnostic)"]["milestones"]
    assert all(ALL_UP in timeline[mode] for mode in ("vanilla", "trusted")), timeline
    assert "ADDR_TRUST received" in timeline["trusted"]
    assert "ADDR_TRUST sent" not in timeline["vanilla"]
    # The classifier's cost per segment, timed by the kernel, in every configuration.
    cost = rows["classifier cost per segment (diagnostic)"]["ns_per_run"]
    assert len(cost) == 4 and all(len(frames) == 3 for frames in cost.values()), cost
    assert all(ns > 0 for frames in cost.values() for ns in frames.values())
    # Binding flows in bundles against one by one, on two switches of one controller.
    for what in ("switch CPU per claim", "controller CPU per claim", "claims made per second"):
        row = rows[f"binding flows in bundles: {what} (diagnostic)"]
        assert row["pairs"] == 2 and row["candidate"]["median"] > 0 < row["baseline"]["median"]
    if profile:  # each CPU's samples by class: the agents and their hooks where they run
        row = rows["goodput profile (diagnostic)"]
        assert row["cpus"] == data["cpus"]  # split alike
        modes = row["profiles"]
        for p in modes.values():
            assert all(sum(c.values()) == pytest.approx(100) for c in p["cpus"].values())
    if profile and row["cpus"]:
        hosts = str(row["cpus"]["hosts"][0])
        assert modes["vanilla"]["cpus"][hosts]["agents"] == 0
        assert modes["trusted"]["cpus"][hosts]["agents"] > 0
        assert any(s.startswith("nft_") for s in modes["trusted"]["hosts_cpu_hooks"])
        assert not any(s.startswith("nft_") for s in modes["vanilla"]["hosts_cpu_hooks"])
    latency = rows["binding set-up latency"]["levels"]
    assert [lv["existing_bindings"] for lv in latency] == [1, 100]
    assert all(lv["never_delivered"] == 0 and lv["p50_ms"] > 0 for lv in latency)
    claims = rows["controller claim rate"]
    assert claims["candidate"]["median"] > 0 and claims["baseline"]["median"] > 0
    assert set(claims["sweep"]) == set(claims["knee"]) == {"savi", "simple_switch"}
    assert [int(load) for load in claims["sweep"]["savi"]] == [200, 800]
    cpu = claims["cpu_us_per_identity"]  # what each identity cost the switch and controller
    assert all(cpu[v][who] > 0 for v in cpu for who in ("switch", "controller")), cpu
    assert result["provenance"]["kernel"]
    assert result["provenance"]["command"].startswith("python -m experiments.bench --quick")
    for name in ("ratios", "binding_latency"):
        assert (out / f"{name}.png").stat().st_size > 0
    assert (out / "table.md").read_text().count("\n") == 2 + len(rows)
    assert not (out / "work").exists()
