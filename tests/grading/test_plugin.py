"""The plugin end to end, on a throwaway check file: fixture, per-check timeout, report."""

import json
import subprocess
import sys
import textwrap

import nbformat
import psutil

from labsupport import isolate

SLEEPER = ["sleep", "600"]
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

    @pytest.mark.timeout(8)
    def test_spins_in_c(lab):
        """A loop inside C code is stopped from outside at the check's limit."""
        lab.spin_in_c()

    def test_sleepers(lab):
        """Detached processes are found, named and killed."""
        lab.leave_sleepers()

    def test_greedy(lab):
        """A huge allocation fails with a memory hint."""
        lab.greedy()

    def test_value_again(lab):
        """Checks after all that still run and keep their own results."""
        assert lab.answer() == 41
''')

HOSTILE = """
import itertools, os


def spin_in_c():
    return sum(itertools.count())


def leave_sleepers():
    for _ in range(10):
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "600"])
            os._exit(0)


def greedy():
    return len(bytearray(20 * 2**30))
"""


def _notebook(path, source):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": ["exercise"]}))
    nbformat.write(nb, str(path))


def _run(tmp, target):
    test_file = tmp / "test_277_plugin_probe.py"  # any registered lab: --lab-notebook is graded
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
    with isolate.temp_dir() as tmp:
        _notebook(
            tmp / "nb.ipynb",
            "def spin():\n    while True:\n        pass\n\ndef answer():\n    return 41\n"
            + HOSTILE,
        )
        proc, checks = _run(tmp, tmp / "nb.ipynb")
    assert proc.returncode == 1
    assert checks["spins"]["outcome"] == "failed" and "timed out" in checks["spins"]["hint"]
    c = checks["spins_in_c"]
    assert c["outcome"] == "failed" and "timed out" in c["hint"] and c["duration_s"] < 20
    c = checks["sleepers"]
    assert c["outcome"] == "failed" and "left 10 process(es)" in c["hint"] and "sleep" in c["hint"]
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == SLEEPER]
    assert checks["greedy"]["outcome"] == "failed" and "memory" in checks["greedy"]["hint"]
    assert checks["value_again"]["outcome"] == "passed"
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
