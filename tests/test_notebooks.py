"""Every finished lab's solution notebook runs end to end, as `srelab run` runs it."""

import json
import subprocess
import sys

import pytest

from labsupport import labs


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("lab", labs.done(), ids=lambda lab: lab.slug)
def test_srelab_run_executes_the_notebook_and_reports_the_headline(lab, tmp_path):
    out = tmp_path / "run.json"
    # One lab also runs its check() cells: the live-kernel grading path, end to end.
    saved = tmp_path / "executed.ipynb"
    extra = ["--with-checks"] if lab.number == labs.done()[0].number else []
    proc = subprocess.run(
        [sys.executable, "-m", "labsupport.cli", "run", str(lab.number), "--json", str(out)]
        + ["--save", str(saved)]
        + extra,
        capture_output=True,
        text=True,
        timeout=1150,
        cwd=labs.REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[1/" in proc.stdout  # progress is shown cell by cell
    outputs = saved.read_text()
    if extra:
        assert "All " in outputs and "visible checks passed" in outputs, "check() did not pass"
    else:
        assert "check(" in outputs and "skipped" in outputs
    data = json.loads(out.read_text())
    assert data["lab"] == lab.slug and data["environment"]["device"]
    assert data["headlines"], "the notebook recorded no headline"
    first = data["headlines"][0]
    ratio = float("inf") if first.get("ratio_infinite") else first["ratio"]
    assert ratio >= lab.min_ratio, (
        f"{lab.slug}: headline ratio {ratio:.2f} < {lab.min_ratio} ({first})"
    )
