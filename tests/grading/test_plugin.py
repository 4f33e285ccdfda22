"""The plugin end to end, on a throwaway check file: fixture, per-check timeout, report."""

import json
import subprocess
import sys
import textwrap

import nbformat

from labsupport import isolate, labs

CHECKS = textwrap.dedent('''
    import pytest

    @pytest.mark.timeout(3)
    def test_spins(lab):
        """A learner function that never returns fails this check only."""
        lab.spin()

    def test_value(lab):
        """The learner's value is right."""
        assert lab.answer() == 42, "the answer is six times seven"

    def test_missing(lab):
        """A name the notebook lacks fails with a clear message."""
        lab.not_there()
''')


def _notebook(path, source):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": ["exercise"]}))
    nbformat.write(nb, str(path))


def _run(tmp, target):
    test_file = tmp / "test_277_plugin_probe.py"  # 277: a registered lab without a solution yet
    test_file.write_text(CHECKS)
    report = tmp / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(test_file),
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "labsupport.grading.plugin",
            f"--rootdir={tmp}",
            f"--lab-notebook={target}",
            f"--srelab-json={report}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp,
    )
    data = json.loads(report.read_text())
    return proc, {c["check"]: c for c in data["checks"]}


def test_timeout_fails_one_check_and_the_others_still_run():
    assert not labs.get(277).solution_path.exists()
    with isolate.temp_dir() as tmp:
        _notebook(
            tmp / "nb.ipynb",
            "def spin():\n    while True:\n        pass\n\ndef answer():\n    return 41\n",
        )
        proc, checks = _run(tmp, tmp / "nb.ipynb")
    assert proc.returncode == 1
    assert checks["spins"]["outcome"] == "failed" and "timed out" in checks["spins"]["hint"]
    assert checks["value"]["outcome"] == "failed"
    assert checks["value"]["hint"] == "the answer is six times seven"
    assert "does not define `not_there`" in checks["missing"]["hint"]
    assert checks["value"]["doc"] == "The learner's value is right."


def test_bad_target_fails_every_check_with_one_clear_message():
    with isolate.temp_dir() as tmp:
        (tmp / "nb.ipynb").write_text("{ not json")
        proc, checks = _run(tmp, tmp / "nb.ipynb")
    assert proc.returncode == 1
    assert {c["outcome"] for c in checks.values()} == {"failed"}
    assert all("is not a notebook" in c["hint"] for c in checks.values())
    assert "Traceback" not in proc.stdout


def test_report_records_environment_and_passing_checks():
    with isolate.temp_dir() as tmp:
        _notebook(tmp / "nb.ipynb", "def answer():\n    return 42\n")
        proc, checks = _run(tmp, tmp / "nb.ipynb")
        data = json.loads((tmp / "report.json").read_text())
    assert checks["value"]["outcome"] == "passed"
    assert {"device", "driver", "torch", "cuda_runtime"} <= set(data["environment"])
