"""Lab 299's reference answers: the cause rule, the sizing rule bounded from both sides."""

from __future__ import annotations

import pytest

from labsupport.k8s import manifests
from labsupport.scenarios.errors_during_rollout import settings as rs
from labsupport.scenarios.errors_during_rollout import variant
from tests.labs.truth import errors_during_rollout as truth

V = variant(0)
CASE = dict(
    production=V.production,
    propagation_s=V.propagation_s,
    longest_answer_s=V.longest_answer_s,
    node_gpus=V.node_gpus,
)
FIXED = truth.reference_manifest(V.production, V.propagation_s, V.longest_answer_s, V.node_gpus)


def test_the_reference_passes_and_production_fails_every_rule():
    assert truth.sizing_problems(FIXED, **CASE) == []
    problems = " | ".join(truth.sizing_problems(V.production, **CASE))
    for field in ("preStop", "--shutdown-timeout", "maxSurge"):
        assert field in problems, problems


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({"pre_stop_s": 4}, "must keep serving normally past then"),
        ({"pre_stop_s": 20, "grace_s": 65}, "far longer than the 3 s"),
        ({"drain_s": 30, "grace_s": 40}, "may need up to 40 s"),
        ({"drain_s": 90, "grace_s": 100}, "more than twice the longest answer"),
        ({"grace_s": 44}, "when does the grace period start counting?"),
        ({"grace_s": 3600}, "keeps its GPU that long"),
        ({"max_unavailable": 1}, "capacity need not drop"),
        ({"max_surge": 2}, "free GPU(s) for pods above the replicas"),
    ],
)
def test_each_rule_names_its_field(changes, expected):
    problems = truth.sizing_problems(rs.manifest_with(FIXED, **changes), **CASE)
    assert any(expected in p for p in problems), problems


def test_a_full_node_needs_a_pod_down_first():
    v = variant(2)
    case = dict(production=v.production, propagation_s=2, longest_answer_s=30, node_gpus=2)
    ok = truth.reference_manifest(v.production, 2, 30, 2)
    assert truth.sizing_problems(ok, **case) == []
    surge = rs.manifest_with(ok, max_surge=1, max_unavailable=0)
    assert any("stays Pending" in p for p in truth.sizing_problems(surge, **case))
    two = rs.manifest_with(ok, max_surge=0, max_unavailable=2)
    assert any("one at a time" in p for p in truth.sizing_problems(two, **case))


def test_schema_errors_exec_hooks_and_changed_containers_are_reported():
    typo = FIXED.replace("terminationGracePeriodSeconds", "terminationGracePeriodSecond")
    assert any("did you mean" in p for p in truth.sizing_problems(typo, **CASE))
    obj = manifests.load(FIXED)
    obj["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = {
        "preStop": {"exec": {"command": ["sleep", "10"]}}
    }
    assert any("native sleep action" in p for p in truth.sizing_problems(obj, **CASE))
    obj = manifests.load(FIXED)
    del obj["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert any("readinessProbe" in p for p in truth.sizing_problems(obj, **CASE))
    twice = manifests.load(FIXED)
    twice["spec"]["template"]["spec"]["containers"][0]["args"] += ["--shutdown-timeout=40"]
    assert any("appears 2 times" in p for p in truth.sizing_problems(twice, **CASE))
    longer = rs.manifest_with(FIXED, pre_stop_s=60, grace_s=30)  # the API server refuses it
    assert any("between 0 and" in p for p in truth.sizing_problems(longer, **CASE))


def test_the_cause_rule_and_the_interviewer_material():
    keys = [truth.answer_key(s) for s in range(3)]
    assert len({repr(k) for k in keys}) == 3
    for seed in range(3):
        v = variant(seed)
        sheet = truth.expected(seed)
        assert sheet["answer_key"] == truth.answer_key(seed)
        assert all("\n" not in str(value) for value in sheet.values())  # one table row each
        model = truth.reference_manifest(
            v.production, v.propagation_s, v.longest_answer_s, v.node_gpus
        )
        case = dict(
            production=v.production,
            propagation_s=v.propagation_s,
            longest_answer_s=v.longest_answer_s,
            node_gpus=v.node_gpus,
        )
        assert truth.sizing_problems(model, **case) == []
    assert set(truth.RUBRIC) == {"diagnosis", "fix", "reasoning"}
    assert all(set(b) == {"strong", "adequate", "weak"} for b in truth.RUBRIC.values())
