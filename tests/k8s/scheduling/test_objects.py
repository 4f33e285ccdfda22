"""Pods and nodes parsed from manifests; tolerations matched as ToleratesTaint matches them."""

from __future__ import annotations

import pytest

from labsupport.k8s.scheduling.objects import Taint, Toleration, pod_from_manifest

GPU = "nvidia.com/gpu"


@pytest.mark.parametrize(
    "toleration,taint,want",
    [
        (Toleration("k", "Equal", "v", "NoSchedule"), Taint("k", "v", "NoSchedule"), True),
        (Toleration("k", "Equal", "w", "NoSchedule"), Taint("k", "v", "NoSchedule"), False),
        (Toleration("k", "Exists"), Taint("k", "v", "NoExecute"), True),
        (Toleration("", "Exists"), Taint("anything", "v", "NoSchedule"), True),  # tolerates all
        (Toleration("k", "Exists", effect="NoExecute"), Taint("k", "", "NoSchedule"), False),
        (Toleration("K", "Exists"), Taint("k", "", "NoSchedule"), False),  # keys are exact
        (Toleration("k", ""), Taint("k", "", "NoSchedule"), True),  # "" operator is Equal
    ],
)
def test_toleration_matches_taint(toleration, taint, want):
    assert toleration.tolerates(taint) is want


def test_taint_text_round_trips():
    for text in (
        "nvidia.com/gpu=present:NoSchedule",
        "node-role.kubernetes.io/control-plane:NoSchedule",
    ):
        assert str(Taint.parse(text)) == text


def _pod(spec, kind="Pod"):
    return {"kind": kind, "metadata": {"name": "p", "namespace": "serving"}, "spec": spec}


def test_requests_default_to_limits_and_sum_over_containers():
    pod = pod_from_manifest(_pod({"containers": [
        {"name": "a", "resources": {"limits": {GPU: 1, "memory": "8Gi"}}},
        {"name": "b", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "2"}}},
    ]}))  # fmt: skip
    assert pod.requests == {GPU: 1, "memory": 8 * 2**30, "cpu": 500}
    assert pod.key == "serving/p"


def test_init_containers_raise_the_request_to_their_maximum_and_overhead_adds():
    pod = pod_from_manifest(_pod({
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "3"}}}],
        "overhead": {"cpu": "250m"},
    }))  # fmt: skip
    assert pod.requests["cpu"] == 3250


def test_scheduling_fields_are_parsed_once():
    pod = pod_from_manifest(_pod({
        "containers": [{"name": "a"}],
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "pool", "operator": "In", "values": ["serving"]}]}]}}},
        "priorityClassName": "batch-low",
    }), priorities={"batch-low": -10})  # fmt: skip
    assert pod.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod.tolerations == (Toleration(GPU, "Exists", "", "NoSchedule"),)
    assert pod.required_terms[0].matches({"pool": "serving"}, "n1")
    assert pod.priority == -10


def test_a_deployment_template_gives_the_pod():
    dep = {"kind": "Deployment", "metadata": {"name": "llm", "namespace": "serving"},
           "spec": {"template": {"metadata": {"labels": {"app": "llm"}},
                                 "spec": {"containers": [{"name": "c"}]}}}}  # fmt: skip
    pod = pod_from_manifest(dep, name="llm-7c9f6d5b8-x2x9q")
    assert (pod.namespace, pod.name, pod.labels) == (
        "serving",
        "llm-7c9f6d5b8-x2x9q",
        {"app": "llm"},
    )
    assert pod.required_terms is None
