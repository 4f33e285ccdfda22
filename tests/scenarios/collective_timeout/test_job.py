"""Lab 297's job: the plan, what a rank has per step, production's step on a healthy day."""

import pytest

from labsupport.scenarios import collective_timeout as scenario
from labsupport.scenarios.collective_timeout import job, runs
from tests.labs.truth import collective_timeout as truth


def test_sequence_numbers_count_three_collectives_a_step_from_one():
    plan = job.Plan(steps=4)
    assert [plan.seq(0, op) for op in job.OPS] == [1, 2, 3]
    assert plan.seq(3, "all_gather") == 12
    assert [s for s, _, _ in truth.expected_collectives(plan)] == list(range(1, 13))


def test_a_quiet_entry_empties_exactly_one_ranks_state_in_one_step():
    plan = job.Plan(quiet=(job.Quiet(1, 2, "all_reduce"), job.Quiet(0, 3, "all_gather")))
    tokens = job.tokens_for(plan, 2)
    assert job.work_for(plan, 1, 2).expert_output(tokens) is None
    assert job.work_for(plan, 0, 2).expert_output(tokens) is not None
    assert job.work_for(plan, 1, 1).expert_output(tokens) is not None
    assert (
        not job.work_for(plan, 0, 3).has_live_requests
        and job.work_for(plan, 1, 3).has_live_requests
    )
    assert job.work_for(plan, 0, 0).tokens is not None and job.work_for(plan, 1, 0).tokens is None


def test_the_data_is_deterministic_and_sums_are_exact():
    plan = job.Plan(seed=5, hidden=16)
    assert job.tokens_for(plan, 3).tolist() == job.tokens_for(plan, 3).tolist()
    assert job.tokens_for(plan, 3).tolist() != job.tokens_for(plan, 4).tolist()
    part = job.partial_for(plan, 1, job.tokens_for(plan, 3))
    assert part.shape == (plan.batch, 16) and bool((part == part.round()).all())
    want = truth.expected_results(plan)
    assert len(want) == plan.steps and want[0]["tokens"] == job.tokens_for(plan, 0).tolist()


def test_the_expected_results_mark_finished_ranks_and_sum_only_routed_parts():
    plan = job.Plan(steps=3, quiet=(job.Quiet(0, 1, "all_gather"), job.Quiet(1, 2, "all_reduce")))
    want = truth.expected_results(plan)
    assert want[1]["out"][: plan.per_rank] == [job.FINISHED] * plan.per_rank
    tokens = job.tokens_for(plan, 2)
    assert want[2]["hidden"] == int(job.partial_for(plan, 0, tokens).double().sum())


@pytest.mark.timeout(120)
def test_production_step_on_a_healthy_day_gives_the_expected_results():
    plan = scenario.variant(1).healthy
    run = runs.recorded(plan)
    assert run.finished, run.summary()
    want = truth.expected_results(plan)
    assert [r.value for r in run.ranks] == [want, want]
    assert runs.slowest_wait_s(run) >= plan.checkpoint_s  # the other rank waited the checkpoint


@pytest.mark.gpu
@pytest.mark.timeout(180)
def test_with_a_gpu_the_job_runs_on_it_and_the_dumps_name_the_rank():
    v = scenario.variant(2)
    healthy = runs.recorded(v.healthy)
    assert healthy.finished and all(r.device.startswith("cuda") for r in healthy.ranks)
    assert [r.value for r in healthy.ranks] == [truth.expected_results(v.healthy)] * 2
    broken = runs.recorded(v.plan)
    assert truth.first_unfinished(broken.traces) == truth.variant_answer(2), broken.summary()
