"""srelab interview: the candidate bundle hides the answers, the sheet has them."""

import json
import re

import pytest

from labsupport import interview, labs

DONE = labs.done()


@pytest.fixture(params=DONE, ids=lambda lab: lab.slug)
def bundle(request, tmp_path):
    lab = request.param
    return lab, interview.write(lab, seed=7, out=tmp_path / "out")


def test_the_candidate_notebook_hides_every_answer(bundle):
    lab, paths = bundle
    nb = json.loads(paths["notebook"].read_text())
    assert nb["metadata"]["srelab"]["seed"] == 7
    text = [("".join(c["source"]), c) for c in nb["cells"]]
    assert not [c for _, c in text if "reveal" in c.get("metadata", {}).get("tags", [])]
    joined = "\n".join(t for t, _ in text)
    assert not re.search(r"Debrief|Model answer|BEGIN SOLUTION", joined)
    words = "|".join(re.escape(w) for w in lab.cause_words)
    cause = re.compile(rf"(?<![A-Za-z0-9_])({words})(?![A-Za-z0-9])", re.I)
    for source, cell in text:
        if cell["cell_type"] == "code" and f'check("{lab.number}"' in source:
            break
        assert not cause.search(source), f"{lab.slug}: names the cause: {source[:200]!r}"
    first = next(s for s, c in text if c["cell_type"] == "code")
    assert "SEED = 7" in first


def test_the_brief_and_the_sheet(bundle):
    lab, paths = bundle
    brief = paths["brief"].read_text()
    assert f"{lab.learner_minutes} minutes" in brief and f'check("{lab.number}")' in brief
    sheet = paths["sheet (Markdown)"].read_text()
    for band in ("Diagnosis", "Fix", "Reasoning"):
        assert f"### {band}" in sheet
    assert "variant 7" in sheet and "Model answer" in sheet and "srelab check" in sheet
    assert "<table>" in paths["sheet (HTML)"].read_text()


def test_an_existing_folder_is_not_overwritten(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep").write_text("")
    with pytest.raises(interview.InterviewError, match="not empty"):
        interview.write(DONE[0], seed=1, out=tmp_path / "x")
