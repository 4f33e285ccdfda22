import json
import subprocess
import sys

import pytest

from labsupport import labs, workspace


def test_start_copies_the_learner_notebook_and_keeps_existing_work(tmp_path):
    path = workspace.start(276, tmp_path)
    assert path == tmp_path / "276_oom_despite_free_memory.ipynb"
    assert json.loads(path.read_text())["cells"]
    path.write_text(path.read_text().replace("NotImplementedError", "my work"))
    with pytest.raises(workspace.WorkspaceError, match="holds your work"):
        workspace.start(276, tmp_path)
    assert "my work" in path.read_text()
    workspace.start(276, tmp_path, force=True)
    assert "my work" not in path.read_text()


def test_a_seeded_start_records_its_variant(tmp_path):
    path = workspace.start(276, tmp_path, seed=7)
    assert workspace.seed_of(path) == 7
    first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert "SEED = 7" in "".join(first["source"])


def test_fill_copies_what_is_missing(tmp_path):
    made = workspace.fill(tmp_path)
    assert {p.name for p in made} == {f"{lab.slug}.ipynb" for lab in labs.done()}
    assert workspace.fill(tmp_path) == []


def _srelab(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "labsupport.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=labs.REPO_ROOT,
        env=env,
    )


@pytest.mark.timeout(600)
def test_start_then_check_grades_the_workspace_copy(tmp_path):
    r = _srelab("check", "276", "--dir", str(tmp_path))
    assert r.returncode == 2 and "srelab start 276" in r.stderr
    r = _srelab("start", "276", "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    report = tmp_path / "report.json"
    r = _srelab("check", "276", "--dir", str(tmp_path), "--json", str(report))
    assert r.returncode == 1, r.stdout + r.stderr
    data = json.loads(report.read_text())
    assert data["target"] == str(tmp_path / "276_oom_despite_free_memory.ipynb")
    assert all(c["outcome"] == "failed" and c["hint"] for c in data["checks"])
    assert data["attempt"] == 1
    r = _srelab("check", "276", "--dir", str(tmp_path), "--json", str(report))
    assert json.loads(report.read_text())["attempt"] == 2


def test_lab_opens_jupyterlab_in_the_workspace(tmp_path):
    r = _srelab("lab", "--dir", str(tmp_path), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"--notebook-dir={tmp_path}" in r.stdout
    assert (tmp_path / "276_oom_despite_free_memory.ipynb").exists()
