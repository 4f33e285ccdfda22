"""DefaultPreemption: the fewest lower-priority victims, and the node chosen as
pickOneNodeForPreemption chooses (default_preemption.go, preemption.go)."""

from __future__ import annotations

from labsupport.k8s.scheduling import Cluster, Container, Node, Pod
from labsupport.k8s.scheduling.plugins import NodeInfo
from labsupport.k8s.scheduling.preemption import _pick, select_victims

GPU = "nvidia.com/gpu"


def _gpu_pod(name, gpus, priority=0, started_at=0.0, node=""):
    pod = Pod(name, containers=[Container("c", requests={GPU: gpus})], priority=priority,
              node_name=node)  # fmt: skip
    pod.started_at = started_at
    return pod


def test_only_the_pods_needed_are_evicted_the_most_important_reprieved_first():
    node = Node("n", allocatable={"pods": 10, GPU: 4})
    pods = [_gpu_pod("a", 2, -10, 1.0), _gpu_pod("b", 1, -10, 2.0), _gpu_pod("c", 1, -5, 3.0)]
    victims, status = select_victims(_gpu_pod("new", 2, 100), NodeInfo(node, pods))
    assert status.ok
    # All three removed, then reprieved in MoreImportantPod order (c, then a, started before
    # b): c fits back, a (2 GPUs) would not leave room, b does.
    assert [v.name for v in victims] == ["a"]


def test_equal_priority_pods_are_never_victims():
    node = Node("n", allocatable={"pods": 10, GPU: 1})
    victims, status = select_victims(_gpu_pod("new", 1, 0), NodeInfo(node, [_gpu_pod("x", 1, 0)]))
    assert victims == [] and status.reasons == ("No preemption victims found for incoming pod",)


def test_pick_adds_maxint32_to_priorities_so_fewer_victims_win():
    one = [_gpu_pod("a", 1, -10)]
    two = [_gpu_pod("b", 1, -10), _gpu_pod("c", 1, -20)]
    assert _pick({"two": two, "one": one}) == "one"


def test_pick_prefers_the_latest_earliest_start_among_top_priority_victims():
    a = [_gpu_pod("a1", 1, -10, 5.0), _gpu_pod("a2", 1, -10, 50.0)]
    b = [_gpu_pod("b1", 1, -10, 20.0), _gpu_pod("b2", 1, -10, 30.0)]
    assert _pick({"a": a, "b": b}) == "b"


def test_pick_prefers_the_lowest_highest_priority_victim():
    assert _pick({"x": [_gpu_pod("x", 1, 0)], "y": [_gpu_pod("y", 1, -1)]}) == "y"


def test_an_idle_low_priority_pod_is_preempted_and_nothing_else():
    c = Cluster()
    c.add_node(Node("g1", allocatable={"pods": 10, GPU: 8}))
    c.add_node(Node("g2", allocatable={"pods": 10, GPU: 8}))
    c.add_pod(_gpu_pod("idle-notebook", 4, -10, node="g1"))
    c.add_pod(_gpu_pod("serving-0", 4, 1000, node="g1"))
    c.add_pod(_gpu_pod("serving-1", 8, 1000, node="g2"))
    c.add_pod(_gpu_pod("serving-2", 4, 1000))
    c.schedule_pending()
    assert "default/idle-notebook" not in c.pods
    assert {k for k in c.pods} == {"default/serving-0", "default/serving-1", "default/serving-2"}
    assert c.pods["default/serving-2"].node_name == "g1"
    reasons = [(e.name, e.reason) for e in c.events]
    assert reasons == [("idle-notebook", "Preempted"), ("serving-2", "FailedScheduling"),
                       ("serving-2", "Scheduled")]  # fmt: skip
    preempted = c.events[0].message
    assert preempted == f"Preempted by pod {c.pods['default/serving-2'].uid} on node g1"
