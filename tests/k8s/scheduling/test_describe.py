"""kubectl-style text: the sections an engineer reads, aligned as kubectl aligns them."""

from __future__ import annotations

from labsupport.k8s.scheduling import Cluster, Container, Node, Pod, Taint, Toleration
from labsupport.k8s.scheduling.describe import describe_node, describe_pod, get_pods

GPU = "nvidia.com/gpu"


def _cluster():
    c = Cluster()
    c.add_node(Node("gpu-a1", labels={"pool": "serving"}, taints=[Taint(GPU, "present")],
                    capacity={GPU: 8, "pods": 110}, allocatable={GPU: 7, "pods": 110}))  # fmt: skip
    c.add_pod(Pod("held", "research", containers=[Container("c", requests={GPU: 7},
              limits={GPU: 7})], node_name="gpu-a1"))  # fmt: skip
    pod = Pod("new", "serving", containers=[Container("c", requests={GPU: 1}, limits={GPU: 1})],
              tolerations=(Toleration(GPU, "Exists", effect="NoSchedule"),),
              node_selector={"pool": "serving"}, owner="ReplicaSet/new-7c9")  # fmt: skip
    c.add_pod(pod)
    for _ in range(3):
        c.schedule_pending()
        c.advance(30)
    return c, pod


def test_describe_pod_has_the_sections_and_the_aggregated_event():
    c, pod = _cluster()
    text = describe_pod(c, pod)
    for line in ("Name:             new", "Node:             <none>", "Status:           Pending",
                 "Controlled By:    ReplicaSet/new-7c9", "Node-Selectors:  pool=serving",
                 "Tolerations:     nvidia.com/gpu:NoSchedule op=Exists"):  # fmt: skip
        assert line in text, line
    event = text.splitlines()[-1]
    assert event.startswith("  Warning  FailedScheduling  30s (x3 over 90s)  default-scheduler")
    assert event.endswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu. no new claims "
                          "to deallocate, preemption: 0/1 nodes are available: 1 No preemption "
                          "victims found for incoming pod.")  # fmt: skip


def test_describe_node_shows_capacity_allocatable_and_who_holds_the_devices():
    c, _ = _cluster()
    text = describe_node(c, "gpu-a1")
    assert "Taints:         nvidia.com/gpu=present:NoSchedule" in text
    capacity = text[text.index("Capacity:") : text.index("Allocatable:")]
    allocatable = text[text.index("Allocatable:") : text.index("System Info:")]
    assert "nvidia.com/gpu:  8" in capacity and "nvidia.com/gpu:  7" in allocatable
    assert ["research", "held", "0", "0", "90s"] in [r.split() for r in text.splitlines()]
    assert text.splitlines()[-2].split() == ["nvidia.com/gpu", "7", "7"]


def test_get_pods_lists_pending_and_running():
    c, _ = _cluster()
    rows = [r.split() for r in get_pods(c).splitlines()]
    assert rows[0][:4] == ["NAMESPACE", "NAME", "READY", "STATUS"]
    assert ["research", "held", "1/1", "Running"] == rows[1][:4]
    assert ["serving", "new", "0/1", "Pending"] == rows[2][:4]
