"""Lab 276's scenario: variants, the page, the evidence, plans; the graded inputs' near misses."""

import re

import pytest

from labsupport import labs
from labsupport.memory.config import MiB
from labsupport.scenarios import oom_despite_free_memory as scenario
from tests.labs.truth import oom_despite_free_memory as truth

CAUSE = re.compile(
    r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, labs.get(276).cause_words)) + r")"
    r"(?![A-Za-z0-9])",
    re.I,
)


def test_the_default_variant_is_the_classic_incident():
    v = scenario.variant(0)
    assert (v.budget_mib, v.request_bytes) == (1100, 200 * MiB)
    assert scenario.variant(0) == v  # deterministic


@pytest.mark.parametrize("seed", range(12))
def test_every_variant_fails_at_the_request_and_its_fix_cures_it(seed):
    v = scenario.variant(seed)
    assert scenario._sound(v)  # exactly one kind of change cures it
    run = scenario.run(v, backend="simulator")
    assert run.outcome == "oom" and v.trace[run.failed_op_index].kind == "request"
    ev = scenario.evidence(v, run)
    plan = truth.reference_plan(ev)
    assert scenario.run(v, plan, backend="simulator").ok
    low, high = truth.server_bounds(ev["deployment"])
    assert low < high and (truth.diagnosis(ev)["cause"] == "allocator" or
                           low <= plan["server_gpu_memory_utilization"] <= high)  # fmt: skip


def test_seeds_vary_the_cause_and_the_numbers():
    causes = {truth.answer_key(s)["cause"] for s in range(6)}
    assert causes == {"allocator", "card"}
    assert truth.answer_key(1) != truth.answer_key(2) != truth.answer_key(0)
    assert truth.answer_key(7)["cause"] == "card"  # `srelab check 276 --seed 7` grades both paths


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_what_the_learner_sees_before_the_diagnosis_names_no_cause(seed):
    v = scenario.variant(seed)
    run = scenario.run(v, backend="simulator")
    for text in (scenario.page(v), scenario.oom_text(run.oom_message), scenario.card_table(run),
                 run.describe()):  # fmt: skip
        found = CAUSE.search(text)
        assert not found, f"seed {seed}: {found.group(0)!r} in {text!r}"
    assert "closing advice" in scenario.oom_text(run.oom_message)


def test_the_fix_of_the_other_cause_does_not_cure_an_incident():
    for seed in (0, 7):
        v = scenario.variant(seed)
        ev = scenario.evidence(v, scenario.run(v, backend="simulator"))
        if truth.diagnosis(ev)["cause"] == "allocator":
            wrong = {"worker_env": {}, "server_gpu_memory_utilization": 0.5}
        else:
            wrong = {"worker_env": {"PYTORCH_ALLOC_CONF": "expandable_segments:True"},
                     "server_gpu_memory_utilization": v.server_after}  # fmt: skip
        assert scenario.run(v, wrong, backend="simulator").outcome == "oom"


def test_apply_plan_changes_the_redeploy_and_the_environment_only():
    v = scenario.variant(7)
    trace, env = scenario.apply_plan(
        v, {"worker_env": {"PYTORCH_ALLOC_CONF": "x"}, "server_gpu_memory_utilization": 0.5}
    )
    changed = [i for i, (a, b) in enumerate(zip(v.trace, trace, strict=True)) if a != b]
    assert len(changed) == 1 and trace[changed[0]].size_bytes == v.server_bytes(0.5)
    assert env == {"PYTORCH_ALLOC_CONF": "x"}
    assert scenario.apply_plan(v, None) == (list(v.trace), {})


def test_evidence_is_plain_data():
    from labsupport import wire

    v = scenario.variant(0)
    ev = scenario.evidence(v, scenario.run(v, backend="simulator"))
    assert wire.loads(wire.dumps(ev)) == ev
    assert set(ev) == {"oom_message", "request_bytes", "snapshot", "memory_stats", "card",
                       "processes", "deployment"}  # fmt: skip


# ---- the graded inputs separate the answer from its near misses ------------------------------


def _runs(snapshot, keep):
    best = 0
    for seg in snapshot["segments"]:
        run = 0
        for b in seg["blocks"]:
            run = run + b["size"] if keep(b["state"]) else 0
            best = max(best, run)
    return best


NEAR_MISSES_LARGEST = {
    "largest single free block": lambda s: max(
        (b["size"] for seg in s["segments"] for b in seg["blocks"] if b["state"] == "inactive"),
        default=0,
    ),
    "pending frees counted as free": lambda s: _runs(s, lambda st: st != "active_allocated"),
    "runs continue into the next segment": lambda s: _runs(
        {"segments": [{"blocks": [b for seg in s["segments"] for b in seg["blocks"]]}]},
        lambda st: st == "inactive",
    ),
    "the free total": lambda s: sum(
        b["size"] for seg in s["segments"] for b in seg["blocks"] if b["state"] == "inactive"
    ),
    "the largest segment's free total": lambda s: max(
        sum(b["size"] for b in seg["blocks"] if b["state"] == "inactive") for seg in s["segments"]
    ),
}
NEAR_MISSES_RESERVED = {
    "pending frees counted as allocated": lambda s: (
        truth.reserved_bytes(s)
        - sum(b["size"] for seg in s["segments"] for b in seg["blocks"] if b["state"] != "inactive")
    ),
    "requested sizes as allocated": lambda s: (
        truth.reserved_bytes(s)
        - sum(
            b["requested_size"]
            for seg in s["segments"]
            for b in seg["blocks"]
            if b["state"] == "active_allocated"
        )
    ),
    "only the inactive blocks": lambda s: sum(
        b["size"] for seg in s["segments"] for b in seg["blocks"] if b["state"] == "inactive"
    ),
    "large segments only": lambda s: truth.reserved_unallocated_bytes(
        {"segments": [seg for seg in s["segments"] if seg["segment_type"] == "large"]}
    ),
}


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
@pytest.mark.parametrize("name", sorted(NEAR_MISSES_LARGEST))
def test_every_near_miss_of_the_largest_block_fails_a_graded_snapshot(seed, name):
    shapes = truth.synthetic_snapshots(seed)
    wrong = NEAR_MISSES_LARGEST[name]
    assert any(wrong(s) != truth.largest_free_block_bytes(s) for s in shapes.values())


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
@pytest.mark.parametrize("name", sorted(NEAR_MISSES_RESERVED))
def test_every_near_miss_of_reserved_unallocated_fails_a_graded_snapshot(seed, name):
    shapes = truth.synthetic_snapshots(seed)
    wrong = NEAR_MISSES_RESERVED[name]
    assert any(wrong(s) != truth.reserved_unallocated_bytes(s) for s in shapes.values())


def test_interviewer_material():
    assert set(truth.RUBRIC) == {"diagnosis", "fix", "reasoning"}
    assert all(set(b) == {"strong", "adequate", "weak"} for b in truth.RUBRIC.values())
    e = truth.expected(7)
    assert e["cause"] == "card" and e["a fix that passes"]["worker_env"] == {}
    before, after = e["headline MiB (largest request that fits, before -> after)"]
    assert 0 < before < after
