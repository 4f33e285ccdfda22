"""Every finished lab's solution notebook runs end to end, as `srelab run` runs it.

The suite runs each notebook at its smaller `suite` scale (`srelab run NNN --scale suite`) and
asserts the headline the registry names for that scale; `srelab run` keeps the full one. The
outputs printed before the diagnosis check are scanned for the lab's cause words.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
        + ["--save", str(saved), "--scale", "suite"]
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
    if os.environ.get("SRELAB_FIGURES_DIR"):  # the README's figures: readme_tables --figures
        shutil.copy(out, Path(os.environ["SRELAB_FIGURES_DIR"]) / f"{lab.slug}.json")
    assert data["lab"] == lab.slug and data["environment"]["device"]
    assert data["headlines"], "the notebook recorded no headline"
    first = data["headlines"][0]
    ratio = float("inf") if first.get("ratio_infinite") else first["ratio"]
    want = lab.suite_min_ratio if lab.suite_min_ratio is not None else lab.min_ratio
    assert ratio >= want, f"{lab.slug}: headline ratio {ratio:.2f} < {want} at suite scale"
    _no_cause_in_outputs_before_the_diagnosis(lab, json.loads(outputs))


def _no_cause_in_outputs_before_the_diagnosis(lab, nb: dict) -> None:
    words = "|".join(re.escape(w) for w in lab.cause_words)
    pattern = re.compile(rf"(?<![A-Za-z0-9_])({words})(?![A-Za-z0-9])", re.IGNORECASE)
    for cell in nb["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and f'check("{lab.number}"' in source:
            return
        for out in cell.get("outputs", []):
            text = out.get("text") or (out.get("data") or {}).get("text/plain") or ""
            text = "".join(text) if isinstance(text, list) else text
            found = pattern.search(text)
            assert not found, (
                f"{lab.slug}: an output before the diagnosis check names the cause: "
                f"{text[max(0, found.start() - 60) : found.end() + 60]!r}"
            )
