"""The evidence tells the causes apart: node resources, taints, labels, pods and DCGM."""

from __future__ import annotations

import pytest

from labsupport.scenarios.pod_pending_gpu_idle import cluster, evidence, variant


@pytest.fixture(scope="module")
def found():
    return {s: evidence.collect(cluster.incident(variant(s)), s) for s in range(5)}


def test_the_pending_pod_shows_its_failed_scheduling_event(found):
    for text in found.values():
        pod = text["describe_pod"]
        assert "Status:           Pending" in pod
        assert "FailedScheduling" in pod and "(x6 over 6m)" in pod


def test_the_idle_pod_holds_gpus_at_zero_utilization(found):
    v = variant(0)
    rows = [r.split() for r in found[0]["gpu_utilization"].splitlines()[1:]]
    held = [r for r in rows if r[2] == v.idle_pod]
    assert len(held) == v.gpus and all(r[3] == "0" for r in held)
    assert v.idle_pod.split("/")[1] in found[0]["describe_nodes"]


def test_an_unhealthy_device_shows_as_allocatable_below_capacity_and_an_xid(found):
    v = variant(2)
    node = next(t for t in found[2]["describe_nodes"].split("\n\n") if f"Name:  {v.victim_node}"
                in t.replace("Name:           ", "Name:  "))  # fmt: skip
    assert "nvidia.com/gpu:     8" in node and "nvidia.com/gpu:     7" in node
    assert any(r.split()[-1] == "79" for r in found[2]["gpu_utilization"].splitlines()[1:])


def test_mig_nodes_advertise_their_profile_and_no_whole_gpu(found):
    v = variant(3)
    assert f"{v.mig_profile}:" in found[3]["describe_nodes"]
    assert "nvidia.com/mig.strategy=mixed" in found[3]["describe_nodes"]


def test_the_taint_and_the_selector_mistakes_are_visible(found):
    assert f"Taints:         {variant(1).taint}" in found[1]["describe_nodes"]
    assert "nvidia.com/gpu=present:NoSchedule" in found[1]["describe_pod"]
    assert variant(4).selector_value in found[4]["describe_pod"]
    assert "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3" in found[4]["describe_nodes"]
