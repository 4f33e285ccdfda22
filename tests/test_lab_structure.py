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


def _first_check_index(lab, cs) -> int:
    pattern = re.compile(rf'check\("{lab.number}"')
    return next(i for i, c in enumerate(cs) if c.cell_type == "code" and pattern.search(c.source))


def _cause_pattern(lab):
    assert lab.cause_words, f"{lab.slug}: declare cause_words in the registry (labsupport/labs.py)"
    words = "|".join(re.escape(w) for w in lab.cause_words)
    return re.compile(rf"(?<![A-Za-z0-9_])({words})(?![A-Za-z0-9])", re.IGNORECASE)


def test_nothing_before_the_diagnosis_check_names_the_cause(cells):
    lab, cs = cells
    pattern = _cause_pattern(lab)
    first = _first_check_index(lab, cs)
    for c in cs[:first]:
        found = pattern.search(c.source)
        assert not found, (
            f"{lab.slug} cell {c.index + 1} names the cause before the diagnosis check: "
            f"{found.group(0)!r} in {c.source[max(0, found.start() - 60) : found.end() + 60]!r}"
        )


def test_reveal_cells_come_after_the_diagnosis_check(cells):
    lab, cs = cells
    first = _first_check_index(lab, cs)
    early = [c.index + 1 for c in cs[:first] if "reveal" in c.tags]
    assert not early, f"{lab.slug}: cells {early} are tagged reveal but come before the check"
    assert any("reveal" in c.tags for c in cs[first:]), f"{lab.slug}: no cell is tagged reveal"


def test_first_code_cell_begins_the_session_with_a_seed(cells):
    lab, cs = cells
    first = next(c.source for c in cs if c.cell_type == "code")
    assert re.search(r"^SEED = \d+", first, re.M), f"{lab.slug}: `SEED = N` in the first cell"
    assert f'session.begin("{lab.number}", seed=SEED)' in first


def test_hints_exist_and_the_first_never_names_the_cause(cells):
    from labsupport import hints

    lab, _ = cells
    table = hints.table(lab)
    from labsupport.grading.target import exercise_names

    assert set(table) == set(exercise_names(lab)), (
        f"{lab.slug}: hints for {sorted(table)}, exercises {exercise_names(lab)}"
    )
    pattern = _cause_pattern(lab)
    for name, ladder in table.items():
        assert 1 <= len(ladder) <= 3, f"{lab.slug} {name}: 1 to 3 hints"
        assert not pattern.search(ladder[0]), f"{lab.slug} {name}: hint 1 names the cause"


def test_checks_are_marked_diagnosis_or_fix(cells):
    from tests.labs import direct

    lab, _ = cells
    assert direct.check_names(lab, "diagnosis"), f"{lab.slug}: no check marked diagnosis"
    assert direct.check_names(lab, "fix"), f"{lab.slug}: no check marked fix"


def test_registry_has_learner_minutes_and_a_scenario(cells):
    import importlib

    lab, _ = cells
    assert lab.learner_minutes > 0, f"{lab.slug}: learner_minutes"
    importlib.import_module(lab.scenario)
