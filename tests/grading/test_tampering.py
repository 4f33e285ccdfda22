"""Grader tampering from inside the exercise cells never earns a pass (the real pipeline).

Each lab's unsolved learner notebook gets one more exercise cell that tries, at import time:
A) to forge verdicts in place (wrap `report.update_entry`, patch builtins and time, append to
   every check file, rewrite any report it can find); graded together with the plain learner
   copy by tests/test_checks_can_fail.py, whose run proves every check still fails; or
B) to write a passing report where the grader keeps it and leave with `os._exit(0)`, here.
Graded by `srelab check`'s runner: every check must still fail, with a hint, and the checks on
disk must be unchanged. A run without the sandbox shows the runner catching what the sandbox
would have prevented (a rewritten report, changed check files).
"""

import contextlib
import fcntl
import json
import os
import tempfile

import nbformat
import pytest

from labsupport import labs
from labsupport.grading import runner

MARK = b"\n# tampered\n"


def forge_in_place(files_glob: str = "tests/labs/*.py") -> str:
    """Mechanism A: forge the verdicts where they are made, and persist in the check files."""
    return f"""
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
for _path in glob.glob(os.path.join(_repo, {files_glob!r})):
    try:
        with open(_path, "a") as _f:
            _f.write({MARK.decode()!r})
    except OSError:
        pass
for _path in glob.glob("/tmp/srelab-*/report.json"):
    try:
        with open(_path, "w") as _f:
            json.dump({{"checks": []}}, _f)
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


def tampered(lab, cell: str, path):
    nb = nbformat.read(str(lab.notebook_path), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(cell, metadata={"tags": ["exercise"]}))
    nbformat.write(nb, str(path))
    return path


@contextlib.contextmanager
def check_files_lock(exclusive: bool = False):
    """Held shared while a test grades and compares the check files, exclusively while the
    no-sandbox test lets a forgery append to one: `pytest -n 2` runs them side by side."""
    path = os.path.join(os.environ.get("SRELAB_STATE_DIR", tempfile.gettempdir()), "checks.lock")
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def snapshot_tests() -> dict:
    return {p: p.read_bytes() for p in (labs.REPO_ROOT / "tests" / "labs").rglob("*.py")}


def undo_tampering() -> None:
    """Strip exactly what forge_in_place appends (other edits to these files are kept)."""
    for path in (labs.REPO_ROOT / "tests" / "labs").rglob("*.py"):
        data = path.read_bytes()
        if data.endswith(MARK):
            while data.endswith(MARK):
                data = data[: -len(MARK)]
            path.write_bytes(data)


def assert_all_failed(result, lab) -> None:
    assert not result["passed"], f"{lab.slug}: tampering passed"
    graded = [c for c in result["checks"] if c["outcome"] != "skipped"]
    assert graded and all(c["outcome"] == "failed" for c in graded), [
        (c["check"], c["outcome"]) for c in graded
    ]
    for c in graded:
        assert c["hint"] and "Traceback" not in c["hint"], (c["check"], c["hint"])


@pytest.mark.parametrize("lab", labs.done(), ids=lambda lab: lab.slug)
@pytest.mark.timeout(300)
def test_a_forged_report_and_exit_leave_every_check_failed(lab, tmp_path):
    with check_files_lock():
        before = snapshot_tests()
        result = runner.grade(lab.number, tampered(lab, FORGE_AND_EXIT, tmp_path / "nb.ipynb"))
        after = snapshot_tests()
    assert_all_failed(result, lab)
    assert after == before, "a check file changed during grading"


@pytest.mark.timeout(300)
def test_without_the_sandbox_the_runner_still_refuses_a_tampered_run(tmp_path, monkeypatch):
    lab = labs.get(276)
    monkeypatch.setenv("SRELAB_SANDBOX", "off")
    cell = forge_in_place(f"tests/labs/test_{lab.slug}.py")  # this lab's file only
    with check_files_lock(exclusive=True):  # no other test grades or compares meanwhile
        try:
            result = runner.grade(lab.number, tampered(lab, cell, tmp_path / "nb.ipynb"))
        finally:  # put the check file back
            undo_tampering()
    assert_all_failed(result, lab)
    assert "not sandboxed" in result["sandbox"]
    hints = json.dumps(result["checks"])
    assert "grader's own files changed" in hints or "signature" in hints
