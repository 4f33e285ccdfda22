"""`kubectl describe pod`, `kubectl describe node` and `kubectl get pods -A -o wide` text for
a scheduling cluster, aligned as kubectl aligns it (Go's tabwriter).

    >>> from labsupport.k8s.scheduling import Cluster, Container, Node, Pod
    >>> from labsupport.k8s.scheduling.describe import describe_node
    >>> c = Cluster()
    >>> c.add_node(Node("gpu-a1", capacity={"nvidia.com/gpu": 8, "pods": 110},
    ...                 allocatable={"nvidia.com/gpu": 7, "pods": 110}))
    >>> print("\\n".join(describe_node(c, "gpu-a1").splitlines()[5:9]))
    Capacity:
      nvidia.com/gpu:  8
      pods:            110
    Allocatable:

The sections and their order follow kubectl's describers (staging/src/k8s.io/kubectl/pkg/
describe/describe.go: `describePod`, `describeNode`, `describeNodeResource`, the events
table with "Age (xN over M)" for aggregated events). Fields the scheduler model has no data
for (IPs, images' digests, conditions other than PodScheduled) are left out, not invented.
"""

from __future__ import annotations

from labsupport.k8s.events import format_age
from labsupport.k8s.scheduling.objects import Pod
from labsupport.k8s.scheduling.quantity import format_value
from labsupport.k8s.scheduling.scheduler import Cluster, Event
from labsupport.k8s.scheduling.tabwriter import align

_STANDARD = ("cpu", "memory", "ephemeral-storage")


def _labels(title: str, labels: dict[str, str]) -> list[str]:
    items = [f"{k}={v}" for k, v in sorted(labels.items())] or ["<none>"]
    return [f"{title}\t{items[0]}"] + [f"\t{item}" for item in items[1:]]


def _resources(title: str, values: dict[str, int], indent: str = "  ") -> list[str]:
    rows = [f"{title}:"]
    for r in sorted(values):
        rows.append(f"{indent}{r}:\t{format_value(r, values[r])}")
    return rows


def _events(cluster: Cluster, events: list[Event]) -> list[str]:
    if not events:
        return ["Events:\t<none>"]
    rows = ["Events:", "  Type\tReason\tAge\tFrom\tMessage", "  ----\t------\t----\t----\t-------"]
    for e in events:
        age = format_age(cluster.now_s - e.last_s)
        if e.count > 1:
            age += f" (x{e.count} over {format_age(cluster.now_s - e.first_s)})"
        rows.append(f"  {e.type}\t{e.reason}\t{age}\t{e.source}\t{e.message}")
    return rows


def describe_pod(cluster: Cluster, pod: Pod) -> str:
    """`kubectl describe pod` for one pod of the cluster."""
    rows = [
        f"Name:\t{pod.name}",
        f"Namespace:\t{pod.namespace}",
        f"Priority:\t{pod.priority}",
    ]
    if pod.priority_class_name:
        rows.append(f"Priority Class Name:\t{pod.priority_class_name}")
    rows += [
        "Service Account:\tdefault",
        f"Node:\t{pod.node_name or '<none>'}",
        *_labels("Labels:", pod.labels),
        f"Status:\t{pod.phase}",
    ]
    if pod.nominated_node_name:
        rows.append(f"NominatedNodeName:\t{pod.nominated_node_name}")
    if pod.owner:
        rows.append(f"Controlled By:\t{pod.owner}")
    rows.append("Containers:")
    for c in pod.containers:
        rows.append(f"  {c.name}:")
        if c.image:
            rows.append(f"    Image:\t{c.image}")
        if c.limits:
            rows += _resources("    Limits", c.limits, "      ")
        if c.requests:
            rows += _resources("    Requests", c.requests, "      ")
    scheduled = "True" if pod.node_name else "False"
    rows += ["Conditions:", "  Type\tStatus", f"  PodScheduled\t{scheduled} "]
    selector = [f"{k}={v}" for k, v in sorted(pod.node_selector.items())]
    rows.append(f"Node-Selectors:\t{','.join(selector) or '<none>'}")
    tolerations = [_toleration(t) for t in pod.tolerations] or ["<none>"]
    rows.append(f"Tolerations:\t{tolerations[0]}")
    rows += [f"\t{t}" for t in tolerations[1:]]
    rows += _events(cluster, cluster.events_for(pod))
    return align("\n".join(rows) + "\n")


def _toleration(t) -> str:
    """kubectl's toleration text: key[=value][:effect] op=Exists [for Ns]."""
    text = t.key
    if t.value:
        text += f"={t.value}"
    if t.effect:
        text += f":{t.effect}"
    if t.operator == "Exists":
        text += " op=Exists"
    if t.toleration_seconds is not None:
        text += f" for {t.toleration_seconds}s"
    return text


def describe_node(cluster: Cluster, name: str) -> str:
    """`kubectl describe node`: labels, taints, capacity, allocatable, pods, allocated."""
    node = cluster.nodes[name]
    pods = cluster.pods_on(name)
    taints = [str(t) for t in node.taints] or ["<none>"]
    rows = [f"Name:\t{node.name}", "Roles:\t<none>", *_labels("Labels:", node.labels)]
    rows += [f"Taints:\t{taints[0]}", *[f"\t{t}" for t in taints[1:]]]
    rows.append(f"Unschedulable:\t{str(node.unschedulable).lower()}")
    rows += _resources("Capacity", node.capacity or node.allocatable)
    rows += _resources("Allocatable", node.allocatable)
    rows += ["System Info:", f"  Kubelet Version:\t{node.kubelet_version}"]
    rows.append(f"Non-terminated Pods:\t({len(pods)} in total)")
    rows.append("  Namespace\tName\tCPU Requests\tMemory Requests\tAge")
    rows.append("  ---------\t----\t------------\t---------------\t---")
    for p in pods:
        cpu = format_value("cpu", p.requests.get("cpu", 0))
        memory = format_value("memory", p.requests.get("memory", 0))
        age = format_age(cluster.now_s - (p.started_at if p.started_at is not None else 0.0))
        rows.append(f"  {p.namespace}\t{p.name}\t{cpu}\t{memory}\t{age}")
    rows += [
        "Allocated resources:",
        "  (Total limits may be over 100 percent, i.e., overcommitted.)",
        "  Resource\tRequests\tLimits",
        "  --------\t--------\t------",
    ]
    requested = {r: sum(p.requests.get(r, 0) for p in pods) for r in node.allocatable}
    limits = {r: sum(p.limits.get(r, 0) for p in pods) for r in node.allocatable}
    order = [r for r in _STANDARD if r in requested] + sorted(
        r for r in requested if r not in _STANDARD and r != "pods"
    )
    for r in order:
        alloc = node.allocatable[r]
        pct = f" ({100 * requested[r] // alloc}%)" if r in _STANDARD and alloc else ""
        rows.append(f"  {r}\t{format_value(r, requested[r])}{pct}\t{format_value(r, limits[r])}")
    rows.append("Events:\t<none>")
    return align("\n".join(rows) + "\n")


def get_pods(cluster: Cluster) -> str:
    """`kubectl get pods -A -o wide` (the columns the model has data for)."""
    rows = ["NAMESPACE\tNAME\tREADY\tSTATUS\tAGE\tNODE\tNOMINATED NODE"]
    for p in sorted(cluster.pods.values(), key=lambda p: (p.namespace, p.name)):
        ready = f"{len(p.containers)}/{len(p.containers)}" if p.phase == "Running" else (
            f"0/{len(p.containers)}")  # fmt: skip
        age = format_age(cluster.now_s - p.created_at)
        rows.append(f"{p.namespace}\t{p.name}\t{ready}\t{p.phase}\t{age}\t"
                    f"{p.node_name or '<none>'}\t{p.nominated_node_name or '<none>'}")  # fmt: skip
    return align("\n".join(rows) + "\n", padding=3)
