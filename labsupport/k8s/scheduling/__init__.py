"""kube-scheduler's filtering, scoring and preemption over a cluster of nodes and pods.

    >>> from labsupport.k8s.scheduling import Cluster, Container, Node, Pod
    >>> c = Cluster()
    >>> c.add_node(Node("gpu-a1", allocatable={"pods": 110, "nvidia.com/gpu": 8}))
    >>> c.add_pod(Pod("p", containers=[Container("c", requests={"nvidia.com/gpu": 9})]))
    >>> c.schedule_pending()
    >>> c.events[-1].message.split(". ")[0]
    '0/1 nodes are available: 1 Insufficient nvidia.com/gpu'

A stand-in for kube-scheduler (which cannot run here), following its source: the filter
plugins and their reason strings (plugins), node selectors and affinity (labels), resource
quantities (quantity), DefaultPreemption (preemption), the scheduling cycle and the
FailedScheduling message (scheduler), Go's tabwriter for `kubectl describe` text (tabwriter).
Pods and nodes are parsed once from manifests into typed objects (objects).
"""

from labsupport.k8s.scheduling.objects import (
    Container,
    Node,
    Pod,
    Taint,
    Toleration,
    pod_from_manifest,
)
from labsupport.k8s.scheduling.plugins import NodeInfo, Status, run_filters
from labsupport.k8s.scheduling.scheduler import Attempt, Cluster, Event, fit_error_message

__all__ = [
    "Attempt",
    "Cluster",
    "Container",
    "Event",
    "Node",
    "NodeInfo",
    "Pod",
    "Status",
    "Taint",
    "Toleration",
    "fit_error_message",
    "pod_from_manifest",
    "run_filters",
]
