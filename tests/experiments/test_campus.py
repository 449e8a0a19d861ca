"""The campus experiment's command line on real campuses (``--quick``: no SAVI and full
SAVI, vanilla and enforcing hosts): the controls come out as they must, the outputs
have their shape, and the figures redraw from the records."""

import csv
import json
import subprocess
import sys

import pytest

from experiments.campus import COLUMNS_ATTACKS, COLUMNS_CONNECTIONS
from experiments.harness import REPO

FIGURES = [f"campus-{n}.{e}" for n in ("success", "confinement") for e in ("pdf", "png")]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("campus") / "quick"
    r = subprocess.run(
        [sys.executable, "-m", "experiments.campus", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_outputs_have_their_shape(quick_run):
    out, r = quick_run
    for name in ("attacks.csv", "connections.csv", "summary.json", "provenance.json", *FIGURES):
        assert (out / name).stat().st_size > 0, name
    assert tuple(rows(out / "attacks.csv")[0]) == COLUMNS_ATTACKS
    assert tuple(rows(out / "connections.csv")[0]) == COLUMNS_CONNECTIONS
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["command"].startswith("python -m experiments.campus") and prov["config"]
    assert str(out) in r.stdout


def test_the_controls_come_out_as_they_must(quick_run):
    """Without SAVI an eavesdropper on the victim's network removes its subflows (the
    positive control: the attack works here); with SAVI on every access switch no
    spoofed RM_ADDR arrives, whatever the hosts run, and every transfer is intact."""
    out, _ = quick_run
    attacks = rows(out / "attacks.csv")
    assert {(a["coverage"], a["mode"]) for a in attacks} == {
        (c, m) for c in ("0.0", "1.0") for m in ("vanilla", "enforce")
    }
    # An attack is made when the tap showed the attacker its subflow (a subflow that
    # came up late may not be there yet: that pair is left out, never counted a failure).
    # Under load an eavesdropper's forgery now and then misses its subflow's window (2
    # of 190 in the committed run): the positive control asks for most, not all.
    made = [a for a in attacks if int(a["subflows_seen"]) >= 1]
    assert len(made) > len(attacks) / 2
    positive = [a for a in made if a["coverage"] == "0.0" and a["mode"] == "vanilla"]
    assert all(a["savi"] == "False" for a in positive)
    assert sum(a["success"] == "True" for a in positive) > len(positive) / 2, positive
    for a in made:
        if a["coverage"] == "1.0":
            assert a["success"] == "False" and a["savi"] == "True", a
            assert a["bytes_match"] == "True", a
    full = [c for c in rows(out / "connections.csv") if c["coverage"] == "1.0"]
    assert full and all(c["bytes_match"] == "True" for c in full)
    # The enforcing hosts' own control options were seen and judged.
    assert sum(int(c["after_total"]) for c in full if c["mode"] == "enforce") > 0


def test_figures_redraw_from_the_records(quick_run):
    out, _ = quick_run
    for name in FIGURES:
        (out / name).unlink()
    r = subprocess.run(
        [sys.executable, "-m", "experiments.campus", "--figures", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert all((out / name).stat().st_size > 0 for name in FIGURES)
