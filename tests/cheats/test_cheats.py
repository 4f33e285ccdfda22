"""Every cheat in the corpus fails at least one check it targets, with a hint, not a traceback.

The cheat's notebook is loaded in a submission process like any other; the targeted checks of
`tests/labs/test_NNN_*.py` are called with it in this pytest session (`tests.labs.direct`), so
what they measure is shared with the grading of the solution (the lab's own caches).
"""

import pytest

from labsupport import labs
from tests.cheats.corpus import KINDS, corpus
from tests.labs import direct

ALL = [c for lab in labs.done() for c in corpus(lab)]


@pytest.mark.parametrize("cheat", ALL, ids=lambda c: f"{c.lab}-{c.name}")
@pytest.mark.timeout(600)
def test_cheat_fails_a_check_it_targets(cheat):
    exercises = direct.exercises(cheat.lab, extra_cells=cheat.cells, base=cheat.base)
    try:
        failures = {}
        for check_id in cheat.checks:
            message = direct.run(cheat.lab, check_id, exercises)
            if message is not None:
                failures[check_id] = message
                break  # one failed check is enough: do not spend the others' time
    finally:
        exercises.close()
    assert failures, f"'{cheat.name}' ({cheat.kind}) passed every check it targets: {cheat.checks}"
    for check_id, message in failures.items():
        assert "Traceback" not in message, f"{check_id}: the hint is a traceback: {message}"


@pytest.mark.parametrize("lab", labs.done(), ids=lambda lab: lab.slug)
def test_each_lab_has_five_cheats_of_every_kind(lab):
    cheats = corpus(lab)
    assert len(cheats) >= 5, f"{lab.slug}: {len(cheats)} cheats in the corpus, need at least 5"
    missing = sorted(set(KINDS) - {c.kind for c in cheats})
    assert not missing, f"{lab.slug}: no cheat of kind {missing}"
