"""Experiments described in files (experiments.run --config FILE): the example, a run's
own config.json, and every kind of bad file, refused before anything starts."""

import json
import subprocess
import sys

import pytest

from experiments.run import REPO, load_config_file, trials_per_cell

EXAMPLE = REPO / "experiments" / "configs" / "enforce-rm-addr.toml"
ENFORCE = "savi/enforce/unprotected/rm_addr/adaptive"
CONTROL = "none/vanilla/unprotected/rm_addr/adaptive"


def test_the_example_file():
    config = load_config_file(EXAMPLE)
    assert config["name"] == "enforce-rm-addr"
    assert trials_per_cell(config) == {ENFORCE: 10, CONTROL: 3}


def test_a_runs_config_json_reruns_it(tmp_path):
    written = {
        "name": "cells",
        "cells": [ENFORCE],
        "trials": 4,
        "cell_trials": {},
        "order_seed": 99,
        "exhaustive": False,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(written))
    assert load_config_file(path) == written


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cells = [1]\ntrials = 1", "cells must be a non-empty list"),
        ("cells = []\ntrials = 1", "cells must be a non-empty list"),
        (f'cells = ["{ENFORCE}"]', "missing trials"),
        (f'cells = ["{ENFORCE}"]\ntrials = 0', "whole numbers >= 1"),
        (f'cells = ["{ENFORCE}"]\ntrials = true', "trials must be a whole number"),
        (f'cells = ["{ENFORCE}"]\ntrials = 2\nexhaustive = 1', "exhaustive must be true or false"),
        (
            f'cells = ["{ENFORCE}"]\ntrials = 2\ncell_trials = {{ "{CONTROL}" = 3 }}',
            "cell_trials names cells not in cells",
        ),
        (f'cells = ["{ENFORCE}"]\ntrials = 2\nbulk_seconds = 3', "unknown key(s) bulk_seconds"),
        ("cells = [", "foo.toml"),  # a TOML syntax error names the file
        (f'name = "../../etc"\ncells = ["{ENFORCE}"]\ntrials = 1', "it names the run folder"),
    ],
)
def test_bad_files_are_refused_with_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "foo.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config_file(path)


def listed(config) -> subprocess.CompletedProcess:
    """``experiments.run --config CONFIG --list``: checks everything, runs nothing."""
    cmd = [sys.executable, "-m", "experiments.run", "--config", str(config), "--list"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_the_command_line_refuses_bad_files_and_unknown_cells(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('cells = ["savi/enforce/unprotected/teleport/adaptive"]\ntrials = 2')
    for config, message in (
        (bad, "unknown attack 'teleport'"),
        (tmp_path / "missing.toml", "No such file"),
        ("nonsense", "neither a configuration"),
    ):
        r = listed(config)
        assert r.returncode == 2 and message in r.stderr, r.stderr
    r = listed(EXAMPLE)
    assert r.returncode == 0 and r.stdout.split() == [ENFORCE, CONTROL]
