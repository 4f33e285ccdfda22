"""Seeds make different incidents: three seeds, three graded answers, and the solution passes.

Each lab's reference module `tests/labs/truth/<symptom>.py` gives `answer_key(seed)`: the
variant's ground truth that the graded diagnosis must match (a cause, a size, a victim). The
default seed is graded by `tests/labs/`; here the solution's diagnosis checks run again at two
more seeds, in this session (`tests.labs.direct`).
"""

import importlib

import pytest

from labsupport import labs
from tests.labs import direct

DONE = labs.done()


def truth(lab):
    return importlib.import_module(f"tests.labs.truth.{lab.symptom}")


def seeds(lab) -> list[int]:
    return [lab.default_seed, lab.default_seed + 1, lab.default_seed + 2]


@pytest.mark.parametrize("lab", DONE, ids=lambda lab: lab.slug)
def test_three_seeds_give_three_different_answers(lab):
    keys = [truth(lab).answer_key(s) for s in seeds(lab)]
    assert len({repr(k) for k in keys}) == 3, f"{lab.slug}: seeds {seeds(lab)} gave {keys}"


@pytest.mark.parametrize("lab", DONE, ids=lambda lab: lab.slug)
@pytest.mark.timeout(600)
def test_solution_passes_the_diagnosis_of_other_seeds(lab):
    names = direct.check_names(lab, kind="diagnosis")
    assert names, f"{lab.slug}: no check is marked @pytest.mark.diagnosis"
    exercises = direct.exercises(lab)
    try:
        for seed in seeds(lab)[1:]:
            for name in names:
                message = direct.run(lab, name, exercises, seed=seed)
                assert message is None, f"{lab.slug} seed {seed}, {name}: {message}"
    finally:
        exercises.close()
