import csv
import json

import jupytext
import pytest
import yaml

from labsupport import gradebook, labs
from labsupport.k8s import manifests

LAB = labs.get(276)  # the quickest lab to grade


@pytest.fixture
def class_folder(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    jupytext.write(jupytext.read(str(LAB.solution_path)), str(folder / "alice.ipynb"))
    (folder / "bob.ipynb").write_text(LAB.notebook_path.read_text())
    (folder / "carol.ipynb").write_text("{ this is not a notebook")
    return folder


@pytest.mark.timeout(600)
def test_a_class_folder_becomes_one_row_per_learner(class_folder, tmp_path):
    out = gradebook.grade_class(class_folder, lab_key=276, jobs=2, out=tmp_path / "book")
    assert out["rows"] == 3
    with open(out["csv"]) as f:
        rows = {r["learner"]: r for r in csv.DictReader(f)}
    assert rows["alice"]["passed"] == "yes"
    checks = [k for k in rows["alice"] if k.startswith(("largest", "reserved", "fix"))]
    assert checks and all(rows["alice"][c] == "PASS" for c in checks)
    assert rows["bob"]["passed"] == "no" and all(rows["bob"][c] == "FAIL" for c in checks)
    assert rows["carol"]["passed"] == "no" and rows["carol"]["score"].startswith("0/")
    page = out["html"].read_text()
    assert "alice" in page and "not a notebook" in page  # carol's hint, on hover


def test_reports_from_the_indexed_job_make_the_same_gradebook(tmp_path):
    reports = tmp_path / "results"
    reports.mkdir()
    check = {"check": "a", "outcome": "passed", "hint": ""}
    (reports / "dan.json").write_text(json.dumps({"passed": True, "checks": [check]}))
    (reports / "eve.json").write_text("{broken")
    out = gradebook.gradebook_from_reports(reports, lab_key=276)
    with open(out["csv"]) as f:
        rows = {r["learner"]: r for r in csv.DictReader(f)}
    assert rows["dan"]["a"] == "PASS" and rows["eve"]["error"] == "unreadable report"


def test_the_indexed_job_manifest_is_valid_kubernetes(class_folder):
    text = gradebook.indexed_job_manifest(276, class_folder, parallelism=8)
    job = yaml.safe_load(text)
    assert manifests.schema_errors(job) == []
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 3
    assert job["spec"]["parallelism"] == 3
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "'alice.ipynb' 'bob.ipynb' 'carol.ipynb'" in script and "JOB_COMPLETION_INDEX" in script


def test_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(gradebook.GradebookError, match="no .ipynb submissions"):
        gradebook.grade_class(tmp_path, lab_key=276)
