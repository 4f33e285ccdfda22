"""The transcript of a notebook run in a real kernel reaches `srelab check`'s report."""

import json
import subprocess
import sys

import nbformat
import pytest

from labsupport import labs, transcript


def test_summary_of_checks_and_hints():
    t = transcript.Transcript(None, lab=290, seed=1)
    t.entries[0]["t"] = 100.0
    t.add("cell", code="x", ok=False, error="NameError")
    t.add("hint", exercise="after_warmup", level=1)
    t.add("check", verdicts={"d": "failed", "f": "failed"}, kinds={"d": "diagnosis", "f": "fix"})
    t.add("check", verdicts={"d": "passed", "f": "failed"}, kinds={"d": "diagnosis", "f": "fix"})
    s = transcript.summarize(t.entries)
    assert s["cells_run"] == 1 and s["cells_failed"] == 1 and s["check_attempts"] == 2
    assert s["hints"] == [("after_warmup", 1)]
    assert s["first_pass_s"]["diagnosis"] is not None and s["first_pass_s"]["fix"] is None
    assert transcript.summarize([]) == {"present": False}


def test_the_copy_embedded_in_a_saved_notebook_is_found(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("check('276')")
    entries = [{"t": 1.0, "kind": "start", "lab": 276, "seed": 0}, {"t": 2.0, "kind": "cell"}]
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={transcript.MIMETYPE: {"entries": entries}})
    ]
    nb.cells.append(cell)
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, str(path))
    assert transcript.load(path) == entries


@pytest.mark.timeout(300)
def test_a_kernel_records_cells_and_the_report_summarises_them(tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('from labsupport import session\nsession.begin("276", seed=3)'),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("y = x + 1"),
    ]
    path = tmp_path / "candidate.ipynb"
    nbformat.write(nb, str(path))
    import os

    os.environ["JPY_SESSION_NAME"] = str(path)  # what jupyter_server sets for its kernels
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        del os.environ["JPY_SESSION_NAME"]
    entries = transcript.load(path)
    assert entries[0]["kind"] == "start" and entries[0]["seed"] == 3
    assert [e["code"] for e in entries if e["kind"] == "cell"][-2:] == ["x = 1", "y = x + 1"]
    report = tmp_path / "r.json"
    subprocess.run(
        [sys.executable, "-m", "labsupport.cli", "check", "276", "--notebook", str(path)]
        + ["--json", str(report)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=labs.REPO_ROOT,
    )
    summary = json.loads(report.read_text())["transcript"]
    assert summary["present"] and summary["cells_run"] >= 2 and summary["seed"] == 3
    assert "informative" in summary["note"]
