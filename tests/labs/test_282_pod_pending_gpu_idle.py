"""Checks of lab 282 (pod pending while a GPU looks idle): the diagnosis and the fix.

Diagnosis: `diagnose` runs on the evidence of this variant first (an unsolved notebook fails
at once), then on four more incidents of the same cluster, one per other cause (the variant
gives the sizes and names), so a constant or a rule that fits one cause fails; two of the
causes print the same FailedScheduling reasons and differ only in the node evidence. The
culprit must be the object the evidence prints. Fix: `fixed_manifest` is applied, for the
five incidents, to a fresh copy of the cluster under the scheduler stand-in after strict
schema validation: the new replica must be bound in the serving pool (the burst pool only
for a failed device), and nothing but the idle pod may be evicted; the manifest must keep
the image, replicas and device count, tolerate no more than the cause needs, and not bypass
the scheduler with nodeName.
"""

from __future__ import annotations

import pytest
import yaml

from labsupport.scenarios import pod_pending_gpu_idle as scenario
from labsupport.scenarios.pod_pending_gpu_idle import cluster
from tests.labs.truth import pod_pending_gpu_idle as truth


def _answer(got, label: str) -> dict:
    ok = isinstance(got, dict) and isinstance(got.get("cause"), str)
    assert ok, f"{label}: diagnose must return a dict with 'cause' and 'culprit', got {got!r}"
    assert got["cause"] in scenario.CAUSES, (
        f"{label}: cause must be one of {scenario.CAUSES}, got {got['cause']!r}"
    )
    assert isinstance(got.get("culprit"), str), f"{label}: culprit must be a string"
    return got


@pytest.mark.diagnosis
@pytest.mark.timeout(90)
def test_diagnosis_names_the_cause_and_its_evidence(lab, seed):
    """diagnose names the cause and the object proving it, in five incidents, one per cause."""
    for s in truth.graded_seeds(seed):
        label = f"incident {s - seed + 1} of 5"
        got = _answer(lab.diagnose(truth.evidence_for(s)), label)
        want = truth.diagnosis(s)
        assert got["cause"] == want["cause"], (
            f"{label}: you said {got['cause']!r}; the nodes say otherwise. Per serving node, "
            "compare what it offers (Capacity vs Allocatable, resource names), its taints and "
            "labels with the pod's requests, tolerations and selector, and who holds its GPUs"
        )
        assert got["culprit"].strip() == want["culprit"], (
            f"{label}: right cause, but {got['culprit']!r} is not the object that proves it; "
            "name it as the evidence prints it (see the docstring for each cause's form)"
        )


def _fixes(lab, seed) -> list[tuple[scenario.Variant, str]]:
    out = []
    for s in truth.graded_seeds(seed):
        v = scenario.variant(s)
        text = lab.fixed_manifest(cluster.manifest(v), truth.diagnosis(s))
        assert isinstance(text, str), f"fixed_manifest must return YAML text, got {text!r}"
        out.append((v, text))
    return out


@pytest.mark.fix
@pytest.mark.timeout(90)
def test_fixed_manifest_schedules_and_evicts_nothing_else(lab, seed):
    """Each fix is valid, binds the new replica in the right pool, evicts only an idle pod."""
    for v, text in _fixes(lab, seed):
        label = f"cause {v.cause}"
        outcome = cluster.apply(v, text)
        assert not outcome.errors, f"{label}: the API server refuses it: {outcome.errors[:3]}"
        assert outcome.node is not None, (
            f"{label}: the new replica is still pending: {outcome.message}"
        )
        pool = "burst" if v.cause == "unhealthy_device" else "serving"
        assert outcome.pool == pool, (
            f"{label}: it landed on {outcome.node} (pool {outcome.pool}); the runbook wants the "
            f"{pool} pool for this cause. Tolerate and select only what the cause needs"
        )
        allowed = {v.idle_pod} if v.cause == "idle_pod" else set()
        others = set(outcome.evicted) - allowed
        assert not others, f"{label}: it evicted {sorted(others)}: other teams' work"


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_fixed_manifest_changes_only_what_the_cause_needs(lab, seed):
    """Same image, replicas and devices; no nodeName, no tolerate-all, a known priority class."""
    for v, text in _fixes(lab, seed):
        label = f"cause {v.cause}"
        try:
            obj = yaml.safe_load(text)
        except yaml.YAMLError as e:
            pytest.fail(f"{label}: not YAML: {e}", pytrace=False)
        assert isinstance(obj, dict) and obj.get("kind") == "Deployment", (
            f"{label}: return the llm-server Deployment"
        )
        was = yaml.safe_load(cluster.manifest(v))
        spec = (obj.get("spec") or {}).get("template", {}).get("spec") or {}
        assert obj["spec"].get("replicas") == was["spec"]["replicas"], (
            f"{label}: keep the replicas as they were"
        )
        assert not spec.get("nodeName"), (
            f"{label}: nodeName skips the scheduler; the kubelet then refuses the pod when the "
            "devices are not there. Let the scheduler place it"
        )
        container = (spec.get("containers") or [{}])[0]
        assert container.get("image") == was["spec"]["template"]["spec"]["containers"][0]["image"]
        limits = (container.get("resources") or {}).get("limits") or {}
        devices = {r: int(n) for r, n in limits.items() if str(r).startswith("nvidia.com/")}
        assert sum(devices.values()) == v.gpus and len(devices) == 1, (
            f"{label}: the model needs {v.gpus} devices of one kind (its tensor parallelism); "
            f"you ask for {devices}"
        )
        for t in spec.get("tolerations") or []:
            assert t.get("key"), (
                f"{label}: a toleration without a key tolerates every taint, the burst pool's "
                "and the control plane's included"
            )
        assert spec.get("priorityClassName") in (None, "llm-serving"), (
            f"{label}: priority classes here are llm-serving and batch; "
            f"{spec.get('priorityClassName')!r} does not exist"
        )
