"""Checks of lab 276, OOM while monitoring shows free memory.

Diagnosis: the learner's numbers are compared with ground truth computed here (tests/labs/truth)
from runs made in this session (the real allocator on a GPU, the simulator without one) and from
snapshots built to separate the answer from its near misses (neighbouring free blocks, a
pending free, touching segments). The cause is graded on this variant's run and on a run of
the other layout, so a fixed answer fails. Fix: the learner's deployment for each run is
applied to a fresh process that replays the batch under the same budget; it must survive,
change only what refused the request, and show its mechanism in the re-run (expandable
segments read back from the snapshot, or the server's share in the card's process list).
"""

import copy
import json

import pytest

from labsupport.memory.config import ALLOC_ENV_NAMES, AllocatorConfig, MiB
from labsupport.scenarios import oom_despite_free_memory as scenario
from tests.labs.truth import oom_despite_free_memory as truth

TINY = {
    "segments": [
        truth.segment(0, [(2 * MiB, truth.A), (3 * MiB, truth.F), (1 * MiB, truth.F)]),
    ]
}


def _number(value, name: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    assert ok, f"{name} must return a number of MiB (a float), not {type(value).__name__}"
    return float(value)


def _tiny_evidence() -> dict:
    """The default incident on the simulator: cheap input for a first, fail-fast call."""
    v = scenario.variant(0)
    return truth.run_evidence(v, backend="simulator")


def graded_runs(seed: int) -> dict:
    """label -> (variant, evidence) of this seed's incident and one of the other layout."""
    mine, other = scenario.variant(seed), truth.counterpart(seed)
    return {
        f"this incident (seed {seed})": (mine, truth.run_evidence(mine)),
        "an incident of the other kind": (other, truth.run_evidence(other)),
    }


def graded_snapshots(seed: int) -> dict:
    shapes = {label: ev["snapshot"] for label, (_, ev) in graded_runs(seed).items()}
    sib = truth.sibling(seed)
    shapes["another batch of the same kind"] = truth.run_evidence(sib)["snapshot"]
    shapes.update(truth.synthetic_snapshots(seed))
    return shapes


@pytest.mark.diagnosis
@pytest.mark.timeout(300)
def test_largest_free_block_matches_every_graded_snapshot(lab, seed):
    """largest_free_block_mib finds the longest run of free blocks, on several snapshots."""
    _number(lab.largest_free_block_mib(copy.deepcopy(TINY)), "largest_free_block_mib")
    for label, snap in graded_snapshots(seed).items():
        want = truth.largest_free_block_bytes(snap) / MiB
        got = _number(lab.largest_free_block_mib(copy.deepcopy(snap)), "largest_free_block_mib")
        if got > want + 0.01:
            pytest.fail(
                f"{label}: {got:.2f} MiB is more than any hole in that snapshot. A request needs "
                "ONE run of neighbouring 'inactive' blocks inside one segment: are you adding "
                "blocks that are not neighbours, a block still 'active_pending_free', or the "
                "free end of one segment to the start of the next?",
                pytrace=False,
            )
        assert got >= want - 0.01, (
            f"{label}: {got:.2f} MiB is less than the largest hole in that snapshot. Look at "
            "every segment, and treat neighbouring 'inactive' blocks as one hole."
        )


@pytest.mark.diagnosis
@pytest.mark.timeout(300)
def test_reserved_unallocated_matches_every_graded_snapshot(lab, seed):
    """reserved_unallocated_mib agrees with the snapshot, on several snapshots."""
    _number(lab.reserved_unallocated_mib(copy.deepcopy(TINY)), "reserved_unallocated_mib")
    for label, snap in graded_snapshots(seed).items():
        want = truth.reserved_unallocated_bytes(snap) / MiB
        got = _number(lab.reserved_unallocated_mib(copy.deepcopy(snap)), "reserved_unallocated_mib")
        assert abs(got - want) <= 0.01, (
            f"{label}: you returned {got:.2f} MiB of reserved-but-unallocated memory. Reserved "
            "is every byte of every segment; allocated is what 'active_allocated' blocks hold "
            "(their size, not the requested size; a pending free is no longer allocated)."
        )


def _diagnosis_of(lab, evidence: dict, label: str) -> dict:
    got = lab.diagnose(copy.deepcopy(evidence))
    assert isinstance(got, dict), f"diagnose() must return a dict, not {type(got).__name__}"
    missing = sorted({"cause", *truth.TOLERANCE_MIB} - set(got))
    assert not missing, f"{label}: diagnose() left out {missing}"
    assert got["cause"] in truth.CAUSES, (
        f"{label}: 'cause' must be one of {truth.CAUSES}, not {got['cause']!r}"
    )
    for key in truth.TOLERANCE_MIB:
        _number(got[key], f"diagnose()[{key!r}]")
    return got


@pytest.mark.diagnosis
@pytest.mark.timeout(300)
def test_diagnosis_names_the_cause_with_numbers_from_the_run(lab, seed):
    """diagnose() names the limit that refused the request and backs it with this run's numbers,
    on this incident and on one of the other kind."""
    _diagnosis_of(lab, _tiny_evidence(), "the default incident")
    for label, (_, ev) in graded_runs(seed).items():
        want = truth.diagnosis(ev)
        got = _diagnosis_of(lab, ev, label)
        for key, tolerance in truth.TOLERANCE_MIB.items():
            assert abs(float(got[key]) - want[key]) <= tolerance, (
                f"{label}: {key} = {float(got[key]):.2f} does not match this run's evidence. "
                "Read it from this run: the snapshot, the budget in evidence['deployment'], "
                "the card's free memory in evidence['card'] or in the OOM message."
            )
        assert got["cause"] == want["cause"], (
            f"{label}: your numbers are right, but {got['cause']!r} is not what refused this "
            "request. Compare the request with the budget left and with the card's free memory: "
            "which limit was too small?"
        )


# ---- the fix ----------------------------------------------------------------------------------


def _plan_for(lab, evidence: dict, label: str) -> dict:
    plan = lab.deployment(copy.deepcopy(evidence))
    assert isinstance(plan, dict), f"deployment() must return a dict, not {type(plan).__name__}"
    extra = sorted(set(plan) - set(scenario.plan_keys()))
    assert not extra, (
        f"{label}: {extra} cannot change: a plan sets only {list(scenario.plan_keys())}. "
        "Raising the worker's budget or removing it hides the failure and takes the card from "
        "the other process."
    )
    env = plan.get("worker_env", {})
    assert isinstance(env, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ), f"{label}: worker_env must be a dict of environment variables (str -> str)"
    others = sorted(set(env) - set(ALLOC_ENV_NAMES))
    assert not others, (
        f"{label}: {others}: only the caching allocator's settings may change "
        "(PYTORCH_ALLOC_CONF or its alias PYTORCH_CUDA_ALLOC_CONF). Turning the cache off "
        "(PYTORCH_NO_CUDA_MEMORY_CACHING) drops the budget and the snapshot with it."
    )
    try:
        config = AllocatorConfig.from_env(env)
    except ValueError as exc:
        pytest.fail(f"{label}: PyTorch would reject these settings: {exc}", pytrace=False)
    assert config.backend == "native", (
        f"{label}: keep the native caching allocator: the budget and the snapshot need it"
    )
    assert config.per_process_memory_fraction is None, (
        f"{label}: per_process_memory_fraction in the environment lifts or moves the worker's "
        "budget: that hides the failure and takes the card from the other process"
    )
    utilization = plan.get("server_gpu_memory_utilization")
    ok = isinstance(utilization, (int, float)) and not isinstance(utilization, bool)
    assert ok, f"{label}: server_gpu_memory_utilization must be a number (a fraction of the card)"
    return {"worker_env": dict(env), "server_gpu_memory_utilization": float(utilization)}


def _checked_plan(lab, evidence: dict, label: str) -> dict:
    """The plan, validated against what refused this run's request."""
    plan = _plan_for(lab, evidence, label)
    dep = evidence["deployment"]
    utilization = plan["server_gpu_memory_utilization"]
    cause = truth.diagnosis(evidence)["cause"]
    if cause == "allocator":
        assert abs(utilization - dep["server_gpu_memory_utilization"]) < 1e-9, (
            f"{label}: the card had {evidence['card']['free_bytes'] / MiB:.0f} MiB free, so the "
            "server's share did not refuse this request: leave it at "
            f"{dep['server_gpu_memory_utilization']}"
        )
    else:
        low, high = truth.server_bounds(dep)
        assert utilization >= low - 1e-9, (
            f"{label}: {utilization} leaves the server less than it needs "
            f"({dep['server_needs_bytes'] / MiB:.0f} MiB): starving the other process moves the "
            "outage, it does not fix it"
        )
        assert utilization <= high + 1e-9, (
            f"{label}: with {utilization} the server and the worker's budget plus its CUDA "
            "context do not both fit on the card: the budget is a cap, not a reservation, so "
            "the next batch can fail the same way"
        )
    return plan


def _rerun(v, plan):
    return truth.run(v, plan, fresh_process=True)


@pytest.mark.fix
@pytest.mark.timeout(120)
def test_fix_changes_only_what_refused_the_request(lab, seed):
    """deployment() keeps the budget, changes the allocator or the server's share, as the
    cause needs, within the bounds of both tenants."""
    _plan_for(lab, _tiny_evidence(), "the default incident")
    for label, (_, ev) in graded_runs(seed).items():
        _checked_plan(lab, ev, label)


@pytest.mark.fix
@pytest.mark.timeout(300)
def test_fix_survives_the_batch_in_a_fresh_process(lab, seed):
    """With the learner's deployment, a fresh process replays each batch without OOM."""
    _plan_for(lab, _tiny_evidence(), "the default incident")
    runs = dict(graded_runs(seed))
    sib = truth.sibling(seed)
    runs["another batch of the same kind"] = (sib, truth.run_evidence(sib))
    for label, (v, ev) in runs.items():
        plan = _checked_plan(lab, ev, label)
        result = _rerun(v, plan)
        assert result.allowed_bytes <= result.cap_bytes, "the run must keep its budget"
        assert result.ok, (
            f"{label}: still out of memory with {json.dumps(plan)}: {result.describe()}. "
            "Which limit refused the request, and does your plan change that limit?"
        )


@pytest.mark.fix
@pytest.mark.timeout(300)
def test_fix_is_in_effect_in_the_rerun(lab, seed):
    """The fresh run shows the mechanism: expandable segments read back from its snapshot, or
    the server's new share in the card's process list."""
    _plan_for(lab, _tiny_evidence(), "the default incident")
    for label, (v, ev) in graded_runs(seed).items():
        plan = _checked_plan(lab, ev, label)
        result = _rerun(v, plan)
        if truth.diagnosis(ev)["cause"] == "allocator":
            settings = result.allocator_settings
            assert settings.get("expandable_segments") is True, (
                f"{label}: the re-run's snapshot reports expandable_segments="
                f"{settings.get('expandable_segments')} (settings string "
                f"{settings.get('PYTORCH_CUDA_ALLOC_CONF')!r}). Check the spelling and the "
                "variable your torch reads (torch 2.9.1 ignored it under PYTORCH_ALLOC_CONF, "
                "pytorch#183387); max_split_size_mb or a collection threshold can dodge one "
                "trace, but they are not what the OOM message recommends."
            )
            assert any(s.get("is_expandable") for s in result.snapshot["segments"]), (
                f"{label}: no segment of the re-run was expandable: {result.describe()}"
            )
        else:
            want = v.server_bytes(plan["server_gpu_memory_utilization"])
            others = [p for p in result.processes if p["name"] != "this process"]
            if result.backend == "simulator":
                assert any(p["used_bytes"] == want for p in others), (
                    f"{label}: the re-run's card does not show the server at its new share"
                )
            assert result.card_free_bytes + result.reserved_bytes >= v.request_bytes, (
                f"{label}: the card still has no room for the request: {result.describe()}"
            )
