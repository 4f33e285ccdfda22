"""Each finished lab follows the contract in docs/authoring.md."""

import re

import pytest

from labsupport import labs
from labsupport.grading.target import EXERCISE_TAG, read_cells

SECTIONS = ["1. Incident", "2. Reproduce", "3. Diagnose", "4. Fix", "5. Verify", "6. Debrief"]
DONE = labs.done()


@pytest.fixture(params=DONE, ids=lambda lab: lab.slug)
def cells(request):
    return request.param, read_cells(request.param.solution_path)


def test_six_sections_in_order(cells):
    lab, cs = cells
    headings = [
        ln.strip("# ").strip()
        for c in cs
        if c.cell_type == "markdown"
        for ln in c.source.splitlines()
        if ln.startswith("## ")
    ]
    found = [s for s in SECTIONS if any(h.startswith(s) for h in headings)]
    assert found == SECTIONS, f"{lab.slug}: sections found {found}"
    order = [next(i for i, h in enumerate(headings) if h.startswith(s)) for s in SECTIONS]
    assert order == sorted(order)


def test_banner_first_and_headline_recorded(cells):
    lab, cs = cells
    code = [c.source for c in cs if c.cell_type == "code"]
    assert "banner(" in code[0], f"{lab.slug}: the first code cell must print device.banner"
    assert any("headline.record(" in src for src in code)


def test_exercises_are_graded_in_the_notebook(cells):
    lab, cs = cells
    exercises = [c for c in cs if EXERCISE_TAG in c.tags]
    assert exercises, "no exercise cell"
    for c in exercises:
        assert "# BEGIN SOLUTION" in c.source, f"exercise cell {c.index + 1} has no solution"
    checks = [
        c for c in cs if c.cell_type == "code" and re.search(rf'check\("{lab.number}"\)', c.source)
    ]
    assert len(checks) >= 2, "a check() cell after the diagnosis and after the fix"


def test_stand_in_is_said_plainly_for_gpu_labs(cells):
    lab, cs = cells
    if lab.gpu != "real":
        pytest.skip("only labs whose failure needs a GPU run a stand-in")
    text = "\n".join(c.source for c in cs).lower()
    assert "stand-in" in text
