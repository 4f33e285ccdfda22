"""A cluster's nodes and pods, and kube-scheduler's scheduling cycle over them.

    >>> from labsupport.k8s.scheduling import Cluster, Container, Node, Pod, Taint
    >>> c = Cluster()
    >>> c.add_node(Node("cp", taints=[Taint("node-role.kubernetes.io/control-plane")],
    ...                 allocatable={"pods": 110, "cpu": 8000}))
    >>> c.add_node(Node("gpu-a1", allocatable={"pods": 110, "cpu": 96000, "nvidia.com/gpu": 8}))
    >>> c.add_pod(Pod("busy", containers=[Container("c", requests={"nvidia.com/gpu": 8})],
    ...               node_name="gpu-a1"))
    >>> c.add_pod(Pod("new", containers=[Container("c", requests={"nvidia.com/gpu": 1})]))
    >>> c.schedule_pending()
    >>> for part in c.events[-1].message.split(". "):
    ...     print(part)
    0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint(s)
    no new claims to deallocate, preemption: 0/2 nodes are available:
      1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.

`schedule_one` is `schedulePod` + `RunPostFilterPlugins` of pkg/scheduler/schedule_one.go: the
NodeAffinity PreFilter (matchFields on metadata.name narrows the nodes; the rest are "node(s)
didn't satisfy plugin(s) [NodeAffinity]"), the filters on every node, then either the best
scored node is bound ("Successfully assigned ns/name to node") or the FailedScheduling event is
recorded with the FitError message (pkg/scheduler/framework/types.go, `FitError.Error`):
"0/N nodes are available: " + the reasons histogram, each "count reason", sorted as strings
(so "10 ..." sorts before "2 ..."), then the PostFilter plugins' messages joined by ", ":
DynamicResources' "no new claims to deallocate" (DRA is GA and on by default since 1.34) and
DefaultPreemption's "preemption: " + its own FitError. Pending pods are tried in PrioritySort
order (priority, then creation time); ties between equally scored nodes go to the first in
node order, where kube-scheduler picks one at random. The clock (`now_s`) is the lab's: the
scenario advances it between attempts, and events aggregate as the API server's do.
"""

from __future__ import annotations

from dataclasses import dataclass

from labsupport.k8s.scheduling.objects import Node, Pod
from labsupport.k8s.scheduling.plugins import (
    UNRESOLVABLE,
    NodeInfo,
    Status,
    run_filters,
    score_nodes,
)
from labsupport.k8s.scheduling.preemption import preempt

SYSTEM_PRIORITY_CLASSES = {
    "system-cluster-critical": 2000000000,
    "system-node-critical": 2000001000,
}


@dataclass
class Event:
    kind: str
    namespace: str
    name: str
    type: str  # Normal | Warning
    reason: str
    message: str
    source: str
    first_s: float
    last_s: float
    count: int = 1


@dataclass
class Attempt:
    """One scheduling cycle of one pod: where it went, or why it went nowhere."""

    pod: str
    node: str | None
    statuses: dict[str, Status]
    message: str
    victims: tuple[str, ...] = ()


def fit_error_message(num_nodes: int, statuses: dict[str, Status], prefilter_msg: str = "",
                      postfilter_msg: str = "") -> str:  # fmt: skip
    """FitError.Error(): "0/N nodes are available:" + reasons + the PostFilter message."""
    msg = f"0/{num_nodes} nodes are available:"
    if prefilter_msg:
        msg += f" {prefilter_msg}."
    else:
        counts: dict[str, int] = {}
        for status in statuses.values():
            for reason in status.reasons:
                counts[reason] = counts.get(reason, 0) + 1
        histogram = sorted(f"{n} {reason}" for reason, n in counts.items())
        if histogram:
            msg += f" {', '.join(histogram)}."
    if postfilter_msg:
        msg += f" {postfilter_msg}"
    return msg


def prefilter_node_names(pod: Pod) -> set[str] | None:
    """NodeAffinity's PreFilterResult: the node names matchFields pin the pod to (None: all)."""
    if not pod.required_terms:
        return None
    names: set[str] = set()
    for term in pod.required_terms:
        pinned = None
        for r in term.fields:
            if r.key == "metadata.name" and r.operator == "In":
                pinned = set(r.values) if pinned is None else pinned & set(r.values)
        if pinned is None:
            return None  # a term without a node name: every node is eligible
        names |= pinned
    return names


class Cluster:
    """Nodes, pods, priority classes and events, with the scheduler running over them."""

    def __init__(self, now_s: float = 0.0, priority_classes: dict[str, int] | None = None,
                 dra_enabled: bool = True):  # fmt: skip
        self.nodes: dict[str, Node] = {}
        self.pods: dict[str, Pod] = {}
        self.events: list[Event] = []
        self.now_s = now_s
        self.priority_classes = {**SYSTEM_PRIORITY_CLASSES, **(priority_classes or {})}
        self.dra_enabled = dra_enabled
        self.attempts: dict[str, Attempt] = {}

    # ---- objects ----
    def add_node(self, node: Node) -> None:
        self.nodes[node.name] = node

    def add_pod(self, pod: Pod) -> None:
        """A new pod: already bound (spec.nodeName, running) or pending for the scheduler."""
        if pod.key in self.pods:
            raise ValueError(f'pods "{pod.name}" already exists')
        if not pod.created_at:
            pod.created_at = self.now_s
        if pod.node_name and pod.phase == "Pending":
            pod.phase = "Running"
            pod.started_at = pod.created_at if pod.started_at is None else pod.started_at
        self.pods[pod.key] = pod

    def delete_pod(self, key: str) -> Pod:
        return self.pods.pop(key)

    def pods_on(self, node: str) -> list[Pod]:
        """The pods the scheduler counts on a node: bound and not terminated."""
        return [p for p in self.pods.values() if p.node_name == node and not p.terminated]

    def node_infos(self) -> dict[str, NodeInfo]:
        return {name: NodeInfo(n, self.pods_on(name)) for name, n in self.nodes.items()}

    def pending(self) -> list[Pod]:
        """Pods waiting for default-scheduler, in PrioritySort order."""
        waiting = [
            p for p in self.pods.values()
            if not p.node_name and p.phase == "Pending" and p.scheduler_name == "default-scheduler"
        ]  # fmt: skip
        return sorted(waiting, key=lambda p: (-p.priority, p.created_at, p.key))

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

    def emit(self, pod: Pod, type_: str, reason: str, message: str, source: str) -> Event:
        """Record an event; a repeat of the same one raises its count (the API server's
        event aggregation)."""
        for e in reversed(self.events):
            same = (e.kind, e.namespace, e.name, e.reason, e.message)
            if same == ("Pod", pod.namespace, pod.name, reason, message):
                e.count += 1
                e.last_s = self.now_s
                return e
        event = Event("Pod", pod.namespace, pod.name, type_, reason, message, source,
                      self.now_s, self.now_s)  # fmt: skip
        self.events.append(event)
        return event

    def events_for(self, pod: Pod) -> list[Event]:
        return [e for e in self.events if (e.namespace, e.name) == (pod.namespace, pod.name)]

    # ---- scheduling ----
    def schedule_pending(self, max_rounds: int = 4) -> None:
        """Try every pending pod; again while preemption made room for one."""
        for _ in range(max_rounds):
            progressed = False
            for pod in self.pending():
                attempt = self.schedule_one(pod)
                progressed |= bool(attempt.victims)
            if not progressed:
                return

    def schedule_one(self, pod: Pod) -> Attempt:
        infos = self.node_infos()
        pinned = prefilter_node_names(pod)
        statuses: dict[str, Status] = {}
        prefilter_msg = ""
        if pinned is not None and not pinned:
            prefilter_msg = "pod affinity terms conflict"
            statuses = {n: Status(UNRESOLVABLE, (prefilter_msg,), "NodeAffinity") for n in infos}
        else:
            for name, info in infos.items():
                if pinned is not None and name not in pinned:
                    reason = "node(s) didn't satisfy plugin(s) [NodeAffinity]"
                    statuses[name] = Status(UNRESOLVABLE, (reason,), "NodeAffinity")
                else:
                    statuses[name] = run_filters(pod, info)
        feasible = [infos[n] for n, s in statuses.items() if s.ok]
        if feasible:
            scores = score_nodes(pod, feasible)
            best = max(scores, key=lambda n: (scores[n], -list(scores).index(n)))
            return self._bind(pod, best, statuses)
        return self._fail(pod, infos, statuses, prefilter_msg)

    def _bind(self, pod: Pod, node: str, statuses) -> Attempt:
        pod.node_name, pod.phase, pod.started_at = node, "Running", self.now_s
        pod.nominated_node_name = ""
        message = f"Successfully assigned {pod.namespace}/{pod.name} to {node}"
        self.emit(pod, "Normal", "Scheduled", message, "default-scheduler")
        self.attempts[pod.key] = Attempt(pod.key, node, statuses, message)
        return self.attempts[pod.key]

    def _fail(self, pod: Pod, infos, statuses, prefilter_msg: str) -> Attempt:
        node, outcome = preempt(pod, infos, statuses)
        parts = ["no new claims to deallocate"] if self.dra_enabled and not prefilter_msg else []
        victims: tuple[str, ...] = ()
        if node is None:
            if isinstance(outcome, str):
                parts.append(f"preemption: {outcome}")
            else:
                parts.append("preemption: " + fit_error_message(len(infos), outcome))
        else:
            victims = tuple(v.key for v in outcome)
            for v in outcome:
                self.delete_pod(v.key)
                self.emit(v, "Normal", "Preempted", f"Preempted by pod {pod.uid} on node {node}",
                          "default-scheduler")  # fmt: skip
            pod.nominated_node_name = node
            parts = []  # a successful PostFilter adds no message
        message = fit_error_message(len(infos), statuses, prefilter_msg, ", ".join(parts))
        self.emit(pod, "Warning", "FailedScheduling", message, "default-scheduler")
        self.attempts[pod.key] = Attempt(pod.key, None, statuses, message, victims)
        return self.attempts[pod.key]
