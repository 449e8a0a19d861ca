"""A run's provenance: which program, and whether the tree differed from its commit."""

import subprocess

import pytest

from experiments import run


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository with one committed file, standing in for this one."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    subprocess.run([*git, "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "one"], check=True)
    monkeypatch.setattr(run, "REPO", tmp_path)
    return tmp_path


def test_stored_results_do_not_make_the_tree_dirty_but_code_does(repo):
    """An earlier run's folder under results/ changes nothing that runs (three benchmark
    runs in a row came out "dirty" from the second on); a changed or new file elsewhere
    does."""
    (repo / "results" / "bench" / "20260101T000000Z").mkdir(parents=True)
    (repo / "results" / "bench" / "20260101T000000Z" / "bench.json").write_text("{}")
    prov = run.provenance(["--only", "scale"], program="experiments.bench")
    assert prov["git_dirty"] is False
    assert prov["command"] == "python -m experiments.bench --only scale"
    (repo / "new.py").write_text("y = 2\n")
    assert run.provenance([])["git_dirty"] is True
    (repo / "new.py").unlink()
    (repo / "code.py").write_text("x = 2\n")
    assert run.provenance([])["git_dirty"] is True
