"""A fix for the wrong cause fails in the variants where the cause is not collections.

The cheat corpus grades the default variant; these cheats are graded at their own seed, with
the same checks, in this session (the variant test shares the seeds' runs of the server).
"""

import pytest

from tests.cheats.cheats_290_p99_spikes import AT_SEED
from tests.labs import direct

CASES = [(seed, cheat) for seed, cheats in AT_SEED.items() for cheat in cheats]


@pytest.mark.parametrize("seed,cheat", CASES, ids=[f"seed{s}-{c.name}" for s, c in CASES])
@pytest.mark.timeout(300)
def test_a_fix_for_another_cause_fails_at_its_seed(seed, cheat):
    exercises = direct.exercises(290, extra_cells=cheat.cells, base=cheat.base)
    try:
        failures = [direct.run(290, check, exercises, seed=seed) for check in cheat.checks]
    finally:
        exercises.close()
    failed = [m for m in failures if m is not None]
    assert failed, f"'{cheat.name}' passed {cheat.checks} at seed {seed}"
    assert all("Traceback" not in m for m in failed), failed
