"""Grader tampering from inside the exercise cells never earns a pass (the real pipeline).

Each lab's unsolved learner notebook gets one more exercise cell that tries, at import time:
A) to forge verdicts in place (wrap `report.update_entry`, patch builtins and time, append to
   every check file, rewrite any report it can find), or
B) to write a passing report where the grader keeps it and leave with `os._exit(0)`.
Graded by `srelab check`'s runner: every check must still fail, with a hint, and the checks on
disk must be unchanged. A run without the sandbox shows the runner catching what the sandbox
would have prevented (a rewritten report, changed check files).
"""

import json

import nbformat
import pytest

from labsupport import labs
from labsupport.grading import runner

FORGE_IN_PLACE = """
import builtins, glob, json, os, time
import labsupport
import labsupport.grading.report as _report

_orig = _report.update_entry


def _forged(entry, rep):
    _orig(entry, rep)
    entry["outcome"], entry["hint"] = "passed", ""


_report.update_entry = _forged
_report.all_passed = lambda checks: True
builtins.__import__ = builtins.__import__
time.perf_counter = lambda: 0.0
_repo = os.path.dirname(os.path.dirname(labsupport.__file__))
for _path in glob.glob(os.path.join(_repo, "tests", "labs", "*.py")):
    try:
        with open(_path, "a") as _f:
            _f.write("\\n# tampered\\n")
    except OSError:
        pass
for _path in glob.glob("/tmp/srelab-*/report.json"):
    try:
        with open(_path, "w") as _f:
            json.dump({"checks": []}, _f)
    except OSError:
        pass
"""

FORGE_AND_EXIT = """
import glob, json, os
_passed = {"target": "x", "started": 0, "duration_s": 1, "environment": {"device": "cpu"},
           "checks": [{"nodeid": "tests/labs/test_x.py::test_all", "check": "all", "doc": "",
                       "outcome": "passed", "hint": "", "duration_s": 1}]}
for _path in glob.glob("/tmp/srelab-*/report.json") + glob.glob("/tmp/*/report.json"):
    try:
        with open(_path, "w") as _f:
            json.dump(_passed, _f)
    except OSError:
        pass
os._exit(0)
"""


def _tampered(lab, cell: str, path):
    nb = nbformat.read(str(lab.notebook_path), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(cell, metadata={"tags": ["exercise"]}))
    nbformat.write(nb, str(path))
    return path


MARK = b"\n# tampered\n"


def _snapshot_tests() -> dict:
    return {p: p.read_bytes() for p in (labs.REPO_ROOT / "tests" / "labs").glob("*.py")}


def _undo_tampering() -> None:
    """Strip exactly what FORGE_IN_PLACE appends (other edits to these files are kept)."""
    for path in (labs.REPO_ROOT / "tests" / "labs").glob("*.py"):
        data = path.read_bytes()
        if data.endswith(MARK):
            while data.endswith(MARK):
                data = data[: -len(MARK)]
            path.write_bytes(data)


def _assert_all_failed(result, lab) -> None:
    assert not result["passed"], f"{lab.slug}: tampering passed"
    graded = [c for c in result["checks"] if c["outcome"] != "skipped"]
    assert graded and all(c["outcome"] == "failed" for c in graded), [
        (c["check"], c["outcome"]) for c in graded
    ]
    for c in graded:
        assert c["hint"] and "Traceback" not in c["hint"], (c["check"], c["hint"])


@pytest.mark.parametrize("cell", [FORGE_IN_PLACE, FORGE_AND_EXIT], ids=["in_place", "exit"])
@pytest.mark.parametrize("lab", labs.done(), ids=lambda lab: lab.slug)
@pytest.mark.timeout(300)
def test_tampering_leaves_every_check_failed(lab, cell, tmp_path):
    before = _snapshot_tests()
    result = runner.grade(lab.number, _tampered(lab, cell, tmp_path / "nb.ipynb"))
    _assert_all_failed(result, lab)
    assert _snapshot_tests() == before, "a check file changed during grading"


@pytest.mark.timeout(300)
def test_without_the_sandbox_the_runner_still_refuses_a_tampered_run(tmp_path, monkeypatch):
    lab = labs.get(276)
    monkeypatch.setenv("SRELAB_SANDBOX", "off")
    try:
        result = runner.grade(lab.number, _tampered(lab, FORGE_IN_PLACE, tmp_path / "nb.ipynb"))
    finally:  # put the check files back
        _undo_tampering()
    _assert_all_failed(result, lab)
    assert "not sandboxed" in result["sandbox"]
    hints = json.dumps(result["checks"])
    assert "grader's own files changed" in hints or "signature" in hints
