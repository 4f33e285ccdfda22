"""Lab 297's variants: what a seed changes, and the job the step function is graded on."""

import pytest

from labsupport.scenarios import collective_timeout as scenario


def test_seeds_change_the_rank_the_step_and_the_collective():
    quiets = [scenario.variant(s).quiet for s in range(7)]
    assert len(set(quiets)) == 7
    assert {q.op for q in quiets} == {"broadcast", "all_reduce", "all_gather"}
    assert {q.rank for q in quiets} == {0, 1}
    assert all(q.rank == 1 for q in quiets if q.op == "broadcast")  # rank 0 is the source
    assert all(2 < q.step < scenario.variant(0).plan.steps - 2 for q in quiets)


@pytest.mark.parametrize("seed", range(7))
def test_the_grading_job_empties_every_kind_of_state_on_both_ranks(seed):
    v = scenario.variant(seed)
    plan = v.grading_plan()
    assert v.quiet in plan.quiet and all(q.step < plan.steps for q in plan.quiet)
    assert {q.op for q in plan.quiet} == {"broadcast", "all_reduce", "all_gather"}
    assert {q.rank for q in plan.quiet} == {0, 1}
    late = [q for q in plan.quiet if q.op == "all_reduce" and q.step == plan.steps - 2]
    assert len(late) == 2, "both ranks with nothing routed in one step"
    assert plan.checkpoint_every < plan.steps  # a checkpoint wait happens in it


def test_bad_seeds_are_refused():
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError):
            scenario.variant(bad)
