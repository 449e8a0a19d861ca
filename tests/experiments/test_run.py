"""The experiment's command line on the real testbed: the short configuration, its
outputs and their sanity, resuming, and re-drawing the figures from the records."""

import csv
import json
import subprocess
import sys

import pytest

from experiments import records
from experiments.harness import REPO

FIGURES = [f"{n}.{e}" for n in ("attack_success", "confinement", "cost") for e in ("pdf", "png")]


def run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "experiments.run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "short"
    r = run("--config", "short", "--out", str(out), "--convergence", "1", "--keep-pcaps")
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def test_outputs_have_their_shape(short_run):
    out, r = short_run
    for name in (
        "records.csv",
        "summary.json",
        "config.json",
        "provenance.json",
        "convergence.json",
        *FIGURES,
    ):
        assert (out / name).stat().st_size > 0, name
    with (out / "records.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == records.COLUMNS and len(rows) == 5
    assert all(r["attempt"] == "1" for r in rows)
    assert all(r["window_drops"].isdigit() for r in rows)  # b's counter read in every trial
    prov = json.loads((out / "provenance.json").read_text())
    assert len(prov["git_commit"]) == 40 and prov["kernel"] and prov["packages"]["ryu"]
    assert "min left" in r.stderr  # progress with the time left
    assert "min left" in (out / "run.log").read_text()  # and kept in the run folder
    assert len(list(out.glob("pcaps/*/a-eth1.pcap"))) == len(rows)  # --keep-pcaps
    assert prov["cpu_model"] and prov["ovs_datapath"] and "userspace TSO" in prov["offloads"]
    headline = json.loads(r.stdout)
    assert set(headline) == {"none/vanilla", "savi/trusted", "savi/enforce"}


def test_outputs_are_sane(short_run):
    out, _ = short_run
    summary = json.loads((out / "summary.json").read_text())
    cells = summary["cells"]
    # The eavesdropper on the unprotected path: vanilla accepts its MP_PRIO, enforcement not.
    assert cells["none/vanilla/unprotected/mp_prio/eavesdrop"]["successes"] == 1
    assert cells["savi/enforce/unprotected/mp_prio/eavesdrop"]["successes"] == 0
    for key, cell in cells.items():
        if "adaptive" not in key:  # the adaptive RM_ADDR may end the transfer it hits
            assert cell["transfers_intact"] == cell["trials"]
        assert 0 <= cell["ci95"][0] <= cell["rate"] <= cell["ci95"][1] <= 1
    # The adaptive attacker: the positive control works, and its log ends at the attempt
    # that did (every one before it failed). Which attempt is a rate, not a promise: in
    # the committed runs 6 of 920 early forgeries against unguarded hosts did nothing,
    # and a later attempt worked (README, the shapes run).
    adaptive = {
        r["cell"]: r for r in records.read(out / "records.csv") if r["strength"] == "adaptive"
    }
    vanilla = adaptive["none/vanilla/unprotected/rm_addr/adaptive"]
    log = vanilla["attempt_log"].split()
    assert vanilla["success"] and log[-1] == (
        f"{vanilla['success_moment']}/{vanilla['success_shape']}:1"
    )
    assert log[0].startswith("early/plain:") and all(a.endswith(":0") for a in log[:-1])
    assert vanilla["attempts"] == len(log)
    # Each attempt that did not work is kept with the victim's refusal counters.
    for r in adaptive.values():
        failed = [a.removesuffix(":0") for a in r["attempt_log"].split() if a.endswith(":0")]
        refused = r["attempt_refusals"].split("; ") if r["attempt_refusals"] else []
        assert [x.split(": ")[0] for x in refused] == failed, r["attempt_refusals"]
    for r in adaptive.values():
        assert r["success_shape"] if r["success"] else r["attempts"] == 1 + 2 * 13
    for r in adaptive.values():  # the early attempt reached a's link in the first 100 ms
        assert r["early_shape"] == "plain" and 0 < r["early_ms"] < 100
    enforce = adaptive["savi/enforce/unprotected/rm_addr/adaptive"]
    if enforce["trusted_up_ms"] is not None and not enforce["success"]:
        log = enforce["attempt_log"].split()  # every attempt made, none worked
        assert len(log) == 27 and all(item.endswith(":0") for item in log)
        assert (
            "Attempts of savi/enforce/unprotected/rm_addr/adaptive"
            in (out / "summary.md").read_text()
        )
    # Before a trusted subflow exists nothing is guarded (docs/trusted-mptcp.md): an
    # early success must have struck before the trusted subflow was up.
    if enforce["success"] and enforce["success_moment"] == "early":
        assert enforce["trusted_up_ms"] is None or enforce["early_ms"] < enforce["trusted_up_ms"]
    cfg = summary["configurations"]
    assert cfg["none/vanilla"]["confinement"] == 0  # nothing is trusted without SAV
    # Per category and phase, labelled from the TPBT histories: the agents' ADDR_TRUST
    # and its echo go on trusted subflows once one is up.
    by_cat = cfg["savi/enforce"]["by_category"]
    assert by_cat["addr_trust"]["after"]["share"] == 1.0
    assert by_cat["addr_trust_echo"]["after"]["share"] == 1.0
    assert cfg["savi/enforce"]["control_on_trusted"] > 0
    assert cfg["savi/trusted"]["goodput_mbps_median"] > 0
    assert "confinement_ci95" in cfg["savi/enforce"]  # None with one trial per cell
    assert isinstance(json.loads((out / "config.json").read_text())["order_seed"], int)
    conv = summary["convergence"]
    assert 0 < conv["removal_to_peer_untrusted_s"]["max"] < 20
    # A new binding reaches the peer's TPBT as the notification goes out, with no timer
    # in between (some 20 ms here; the benchmark reports the numbers).
    assert 0 < conv["binding_to_peer_trusted_s"]["max"] < 0.5
    table = (out / "tpbt" / "savi_trusted_unprotected_mp_prio_eavesdrop.txt").read_text()
    assert "SubFlow" in table and "Sf(10.1.0.10,10.3.0.20)  True      True" in table


def test_resume_runs_nothing_twice(short_run):
    out, _ = short_run
    before = (out / "records.csv").read_text()
    r = run("--resume", str(out), "--convergence", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "5 trials done, 0 trials" in r.stderr
    assert (out / "records.csv").read_text() == before
    prov = json.loads((out / "provenance.json").read_text())
    assert "--config short" in prov["command"] and "--resume" in prov["resumed"][0]["command"]


def test_figures_are_redrawn_from_the_records(short_run):
    out, _ = short_run
    for name in FIGURES:
        (out / name).unlink()
    r = subprocess.run(
        [sys.executable, "-m", "experiments.figures", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert all((out / name).stat().st_size > 0 for name in FIGURES)


def test_bad_cells_are_refused_before_anything_runs(tmp_path):
    r = run("--cell", "savi/turbo/protected/rm_addr/eavesdrop", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "unknown mode 'turbo'" in r.stderr
    assert not (tmp_path / "x").exists()
    r = run("--resume", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "no readable config.json" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trials", "0"], "--trials must be at least 1"),
        (["--convergence", "-1"], "--convergence must be 0"),
    ],
)
def test_bad_numbers_are_refused_before_anything_runs(tmp_path, args, message):
    """--trials 0 once became the configuration's 3 and started a 33-minute run."""
    r = run("--config", "short", *args, "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and message in r.stderr
    assert not (tmp_path / "x").exists()
