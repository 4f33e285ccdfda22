"""kube-scheduler's filter and score plugins for this model, with their exact reason strings.

    >>> from labsupport.k8s.scheduling.objects import Node, Pod, Container, Taint
    >>> from labsupport.k8s.scheduling.plugins import NodeInfo, run_filters
    >>> node = Node("gpu-a1", taints=[Taint("nvidia.com/gpu", "present")],
    ...             allocatable={"cpu": 96000, "memory": 2**40, "pods": 110, "nvidia.com/gpu": 8})
    >>> pod = Pod("p", containers=[Container("c", requests={"nvidia.com/gpu": 1})])
    >>> status = run_filters(pod, NodeInfo(node, []))
    >>> status.plugin, status.code, status.message
    ('TaintToleration', 'UnschedulableAndUnresolvable', 'node(s) had untolerated taint(s)')

The filters run in the default profile's order (pkg/scheduler/apis/config/v1/default_plugins.go:
NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit) and a
node's status is the first one that fails, as `RunFilterPlugins` does. Reason strings and codes
are the plugins' own (pkg/scheduler/framework/plugins/...): TaintToleration says
"node(s) had untolerated taint(s)" without the taint since kubernetes#134740 (1.35, cherry-picked
to 1.34); NodeResourcesFit is UnschedulableAndUnresolvable when the request exceeds the node's
allocatable, not only its free room (preemption cannot help there). Not modelled: NodePorts
(no host ports here), volume plugins, PodTopologySpread and InterPodAffinity (no constraints
used), and among scores BalancedAllocation and ImageLocality.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labsupport.k8s.scheduling.labels import matches_selector, matches_terms
from labsupport.k8s.scheduling.objects import Node, Pod, Taint, tolerated

SUCCESS = "Success"
UNSCHEDULABLE = "Unschedulable"
UNRESOLVABLE = "UnschedulableAndUnresolvable"
UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")
DEFAULT_MILLI_CPU = 100  # schedutil.DefaultMilliCPURequest, used by scoring only
DEFAULT_MEMORY = 200 * 2**20  # schedutil.DefaultMemoryRequest
MAX_NODE_SCORE = 100
SCORE_WEIGHTS = {"TaintToleration": 3, "NodeAffinity": 2, "NodeResourcesFit": 1}


@dataclass(frozen=True)
class Status:
    code: str
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)


OK = Status(SUCCESS)


@dataclass
class NodeInfo:
    """A node with the pods the scheduler counts on it (bound and not terminated)."""

    node: Node
    pods: list[Pod] = field(default_factory=list)

    @property
    def requested(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for p in self.pods:
            for r, v in p.requests.items():
                total[r] = total.get(r, 0) + v
        return total

    def non_zero_requested(self, resource: str) -> int:
        default = {"cpu": DEFAULT_MILLI_CPU, "memory": DEFAULT_MEMORY}[resource]
        return sum(p.requests.get(resource) or default for p in self.pods)


# ---- filters ------------------------------------------------------------------------------
def node_unschedulable(pod: Pod, info: NodeInfo) -> Status:
    if info.node.unschedulable and not tolerated(pod.tolerations, UNSCHEDULABLE_TAINT):
        return Status(UNRESOLVABLE, ("node(s) were unschedulable",))
    return OK


def node_name(pod: Pod, info: NodeInfo) -> Status:
    if pod.node_name and pod.node_name != info.node.name:
        return Status(UNRESOLVABLE, ("node(s) didn't match the requested node name",))
    return OK


def untolerated_taint(pod: Pod, node: Node) -> Taint | None:
    """FindMatchingUntoleratedTaint with DoNotScheduleTaintsFilterFunc: the first NoSchedule or
    NoExecute taint no toleration matches."""
    for taint in node.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not tolerated(pod.tolerations, taint):
            return taint
    return None


def taint_toleration(pod: Pod, info: NodeInfo) -> Status:
    if untolerated_taint(pod, info.node) is not None:
        return Status(UNRESOLVABLE, ("node(s) had untolerated taint(s)",))
    return OK


def matches_required_affinity(pod: Pod, node: Node) -> bool:
    """nodeaffinity.GetRequiredNodeAffinity(pod).Match(node): nodeSelector and required terms."""
    if not matches_selector(pod.node_selector, node.labels):
        return False
    if pod.required_terms is not None:
        return matches_terms(pod.required_terms, node.labels, node.name)
    return True


def node_affinity(pod: Pod, info: NodeInfo) -> Status:
    if not matches_required_affinity(pod, info.node):
        return Status(UNRESOLVABLE, ("node(s) didn't match Pod's node affinity/selector",))
    return OK


def insufficient(pod: Pod, info: NodeInfo) -> list[tuple[str, bool]]:
    """fitsRequest: (reason, unresolvable) per resource the node cannot give, in its order."""
    alloc, used, want = info.node.allocatable, info.requested, pod.requests
    out = []
    if len(info.pods) + 1 > alloc.get("pods", 0):
        out.append(("Too many pods", False))
    standard = [r for r in ("cpu", "memory", "ephemeral-storage") if want.get(r)]
    scalar = sorted(r for r in want if r not in ("cpu", "memory", "ephemeral-storage", "pods"))
    for r in standard + scalar:
        if want[r] and want[r] > alloc.get(r, 0) - used.get(r, 0):
            out.append((f"Insufficient {r}", want[r] > alloc.get(r, 0)))
    return out


def node_resources_fit(pod: Pod, info: NodeInfo) -> Status:
    found = insufficient(pod, info)
    if not found:
        return OK
    code = UNRESOLVABLE if any(u for _, u in found) else UNSCHEDULABLE
    return Status(code, tuple(reason for reason, _ in found))


FILTERS = (
    ("NodeUnschedulable", node_unschedulable),
    ("NodeName", node_name),
    ("TaintToleration", taint_toleration),
    ("NodeAffinity", node_affinity),
    ("NodeResourcesFit", node_resources_fit),
)


def run_filters(pod: Pod, info: NodeInfo) -> Status:
    """The node's status for the pod: the first failing plugin's, or success."""
    for name, plugin in FILTERS:
        status = plugin(pod, info)
        if not status.ok:
            return Status(status.code, status.reasons, name)
    return OK


# ---- scores -------------------------------------------------------------------------------
def _normalize(scores: dict[str, int], reverse: bool) -> dict[str, int]:
    """helper.DefaultNormalizeScore."""
    top = max(scores.values(), default=0)
    if top == 0:
        return {n: MAX_NODE_SCORE if reverse else 0 for n in scores}
    out = {n: MAX_NODE_SCORE * s // top for n, s in scores.items()}
    return {n: MAX_NODE_SCORE - s for n, s in out.items()} if reverse else out


def _taint_score(pod: Pod, node: Node) -> int:
    prefer = [t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule")]
    return sum(
        1 for t in node.taints if t.effect == "PreferNoSchedule" and not tolerated(prefer, t)
    )


def _affinity_score(pod: Pod, node: Node) -> int:
    return sum(w for w, term in pod.preferred_terms if term.matches(node.labels, node.name))


def _least_allocated(pod: Pod, info: NodeInfo) -> int:
    """LeastAllocated over cpu and memory, weight 1 each (the default scoring strategy)."""
    total = 0
    for r, default in (("cpu", DEFAULT_MILLI_CPU), ("memory", DEFAULT_MEMORY)):
        capacity = info.node.allocatable.get(r, 0)
        requested = info.non_zero_requested(r) + (pod.requests.get(r) or default)
        if capacity and requested <= capacity:
            total += (capacity - requested) * MAX_NODE_SCORE // capacity
    return total // 2


def score_nodes(pod: Pod, infos: list[NodeInfo]) -> dict[str, int]:
    """Weighted sum of the plugins' normalized scores, per feasible node."""
    taints = _normalize({i.node.name: _taint_score(pod, i.node) for i in infos}, reverse=True)
    affinity = _normalize({i.node.name: _affinity_score(pod, i.node) for i in infos}, reverse=False)
    fit = {i.node.name: _least_allocated(pod, i) for i in infos}
    w = SCORE_WEIGHTS
    return {
        n: w["TaintToleration"] * taints[n] + w["NodeAffinity"] * affinity[n]
        + w["NodeResourcesFit"] * fit[n]
        for n in fit
    }  # fmt: skip
