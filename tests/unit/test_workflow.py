"""The CI workflow offered to users (.github/workflows/test.yml) runs the README's test
command. (actionlint is its real linter; it is not installable offline here.)"""

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # Debian's python3-yaml (the venv sees system packages)

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "test.yml"


def test_the_workflow_runs_the_readmes_test_command_on_a_supported_runner():
    flow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = flow["jobs"].values()
    assert job["runs-on"] == "ubuntu-24.04"  # a platform the installer supports
    runs = [step.get("run") for step in job["steps"]]
    assert "sudo make test" in runs
    readme = (WORKFLOW.parents[2] / "README.md").read_text()
    assert "sudo make test" in readme
    assert job["timeout-minutes"] >= 30
