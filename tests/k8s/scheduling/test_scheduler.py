"""The scheduling cycle and its FailedScheduling message, in kube-scheduler's exact format.

FitError.Error() (pkg/scheduler/framework/types.go): "0/N nodes are available:" + " %v." with
the reasons histogram, each "count reason", sorted as strings, then " " + the PostFilter
message (DynamicResources' "no new claims to deallocate", DefaultPreemption's "preemption: "
+ its own FitError), joined by ", ".
"""

from __future__ import annotations

from labsupport.k8s.scheduling import Cluster, Container, Node, Pod, Taint, fit_error_message
from labsupport.k8s.scheduling.labels import Requirement, Term
from labsupport.k8s.scheduling.plugins import UNRESOLVABLE, Status

GPU = "nvidia.com/gpu"
ALLOC = {"pods": 110, "cpu": 96000, "memory": 2**40, GPU: 8}


def _gpu_pod(name, gpus, **kw):
    return Pod(name, containers=[Container("c", requests={GPU: gpus})], **kw)


def test_a_message_seen_on_a_real_cluster_is_reproduced_byte_for_byte():
    # A FailedScheduling event quoted from a 1.34 cluster, 17 nodes all tainted.
    want = (
        "0/17 nodes are available: 17 node(s) had untolerated taint(s). no new claims to "
        "deallocate, preemption: 0/17 nodes are available: 17 Preemption is not helpful for "
        "scheduling."
    )
    c = Cluster()
    for i in range(17):
        c.add_node(Node(f"n{i}", taints=[Taint("dedicated", "infra")], allocatable=dict(ALLOC)))
    c.add_pod(Pod("web"))
    c.schedule_pending()
    assert c.events[-1].reason == "FailedScheduling"
    assert c.events[-1].message == want


def test_the_histogram_sorts_as_strings_not_numbers():
    statuses = {
        f"t{i}": Status(UNRESOLVABLE, ("node(s) had untolerated taint(s)",)) for i in range(10)
    }
    statuses |= {f"g{i}": Status(UNRESOLVABLE, ("Insufficient nvidia.com/gpu",)) for i in range(2)}
    msg = fit_error_message(12, statuses)
    assert msg == (
        "0/12 nodes are available: 10 node(s) had untolerated taint(s), "
        "2 Insufficient nvidia.com/gpu."
    )


def test_every_reason_of_a_node_is_counted():
    c = Cluster(dra_enabled=False)
    c.add_node(Node("small", allocatable={"pods": 110, "cpu": 1000, "memory": 2**30}))
    c.add_pod(Pod("big", containers=[Container("c", requests={"cpu": 2000, "memory": 2**31})],
                  preemption_policy="Never"))  # fmt: skip
    c.schedule_pending()
    assert c.events[-1].message == (
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. "
        "preemption: not eligible due to preemptionPolicy=Never."
    )


def test_a_gpu_held_by_a_running_pod_is_insufficient_and_preemption_finds_no_victim():
    c = Cluster()
    c.add_node(Node("gpu-a1", allocatable=dict(ALLOC)))
    c.add_pod(_gpu_pod("idle", 8, node_name="gpu-a1"))
    c.add_pod(_gpu_pod("new", 1))
    c.schedule_pending()
    assert c.events[-1].message == (
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. no new claims to deallocate, "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )
    assert c.pods["default/new"].node_name == ""


def test_a_request_above_allocatable_is_not_helped_by_preemption():
    c = Cluster()
    c.add_node(Node("gpu-a1", allocatable={**ALLOC, GPU: 7}))  # one device unhealthy
    c.add_pod(_gpu_pod("low", 1, node_name="gpu-a1", priority=-10))
    c.add_pod(_gpu_pod("new", 8))
    c.schedule_pending()
    assert c.events[-1].message.endswith(
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    assert "default/low" in c.pods  # nothing evicted


def test_repeated_failures_aggregate_into_one_event_with_a_count():
    c = Cluster()
    c.add_node(Node("n", allocatable=dict(ALLOC)))
    c.add_pod(_gpu_pod("p", 9))
    for _ in range(3):
        c.schedule_pending()
        c.advance(10)
    (event,) = c.events_for(c.pods["default/p"])
    assert (event.count, event.first_s, event.last_s) == (3, 0.0, 20.0)


def test_a_fitting_pod_is_bound_to_the_best_scored_node():
    c = Cluster()
    c.add_node(Node("busy", allocatable=dict(ALLOC)))
    c.add_node(Node("free", allocatable=dict(ALLOC)))
    c.add_pod(Pod("hog", containers=[Container("c", requests={"cpu": 90000})], node_name="busy"))
    c.add_pod(Pod("p", containers=[Container("c", requests={"cpu": 1000})]))
    c.schedule_pending()
    assert c.pods["default/p"].node_name == "free"  # LeastAllocated
    assert c.events[-1].message == "Successfully assigned default/p to free"


def test_match_fields_pin_the_pod_and_the_other_nodes_did_not_satisfy_the_prefilter():
    c = Cluster(dra_enabled=False)
    for name in ("a", "b", "c"):
        c.add_node(Node(name, allocatable=dict(ALLOC)))
    c.add_pod(_gpu_pod("held", 8, node_name="a"))
    pinned = Term(fields=(Requirement("metadata.name", "In", ("a",)),))
    c.add_pod(_gpu_pod("p", 1, required_terms=(pinned,)))
    c.schedule_pending()
    assert c.events[-1].message.startswith(
        "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, "
        "2 node(s) didn't satisfy plugin(s) [NodeAffinity]."
    )


def test_pending_pods_are_tried_by_priority_then_age():
    c = Cluster()
    c.add_node(Node("n", allocatable={**ALLOC, GPU: 1}))
    c.add_pod(_gpu_pod("old-low", 1))
    c.advance(5)
    c.add_pod(_gpu_pod("new-high", 1, priority=100))
    assert [p.name for p in c.pending()] == ["new-high", "old-low"]
    c.schedule_pending()
    assert c.pods["default/new-high"].node_name == "n"
    assert c.pods["default/old-low"].node_name == ""


def test_terminated_pods_free_their_devices():
    c = Cluster()
    c.add_node(Node("n", allocatable=dict(ALLOC)))
    c.add_pod(_gpu_pod("done", 8, node_name="n"))
    c.pods["default/done"].phase = "Succeeded"
    c.add_pod(_gpu_pod("p", 8))
    c.schedule_pending()
    assert c.pods["default/p"].node_name == "n"
