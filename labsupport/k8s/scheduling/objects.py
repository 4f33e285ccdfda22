"""Nodes, pods, taints and tolerations as the scheduler sees them, parsed once from manifests.

    >>> from labsupport.k8s.scheduling.objects import Taint, Toleration, pod_from_manifest
    >>> Toleration("nvidia.com/gpu", "Exists", effect="NoSchedule").tolerates(
    ...     Taint("nvidia.com/gpu", "present", "NoSchedule"))
    True
    >>> pod = pod_from_manifest({"metadata": {"name": "p"}, "spec": {"containers": [
    ...     {"name": "c", "resources": {"limits": {"nvidia.com/gpu": 2, "memory": "8Gi"}}}]}})
    >>> pod.requests["nvidia.com/gpu"], pod.requests["memory"]
    (2, 8589934592)

`pod_from_manifest` takes a Pod's or a Deployment template's `spec` as the API server would
store it: requests default to limits per container (defaulting of ResourceRequirements), the
pod's request is the sum over its containers, raised to any larger init container and plus
the pod overhead (`resource.PodRequests`, k8s.io/component-helpers/resource). Toleration
matching is `Toleration.ToleratesTaint` (k8s.io/api/core/v1/toleration.go) with the `Equal` and
`Exists` operators; the alpha `Lt`/`Gt` operators (KEP-5471, feature gate off by default) are
not modelled.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from labsupport.k8s.scheduling import quantity
from labsupport.k8s.scheduling.labels import Term, term_from_dict

_uids = itertools.count(1)


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"  # NoSchedule | PreferNoSchedule | NoExecute

    def __str__(self) -> str:  # Taint.ToString
        return (
            f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"
        )

    @classmethod
    def parse(cls, text: str) -> Taint:
        """`key[=value]:Effect`, as `kubectl taint` and `kubectl describe node` write it."""
        kv, _, effect = text.rpartition(":")
        key, _, value = kv.partition("=")
        return cls(key, value, effect)


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"  # "" means Equal
    value: str = ""
    effect: str = ""  # "" matches every effect
    toleration_seconds: int | None = None

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator in ("", "Equal"):
            return self.value == taint.value
        return self.operator == "Exists"

    @classmethod
    def from_dict(cls, raw: dict) -> Toleration:
        return cls(
            raw.get("key", "") or "",
            raw.get("operator", "Equal") or "Equal",
            str(raw.get("value", "") or ""),
            raw.get("effect", "") or "",
            raw.get("tolerationSeconds"),
        )


def tolerated(tolerations, taint: Taint) -> bool:
    return any(t.tolerates(taint) for t in tolerations)


@dataclass
class Node:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Taint] = field(default_factory=list)
    unschedulable: bool = False
    capacity: dict[str, int] = field(default_factory=dict)  # quantity.parse units
    allocatable: dict[str, int] = field(default_factory=dict)
    created_at: float = 0.0  # seconds on the cluster's clock
    address: str = ""
    kubelet_version: str = "v1.36.2"


@dataclass
class Container:
    name: str
    image: str = ""
    requests: dict[str, int] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)


@dataclass
class Pod:
    name: str
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    containers: list[Container] = field(default_factory=list)
    init_containers: list[Container] = field(default_factory=list)
    overhead: dict[str, int] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    required_terms: tuple[Term, ...] | None = None  # None: no required node affinity
    preferred_terms: tuple[tuple[int, Term], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    priority: int = 0
    priority_class_name: str = ""
    preemption_policy: str = "PreemptLowerPriority"
    scheduler_name: str = "default-scheduler"
    node_name: str = ""  # spec.nodeName: set when bound
    nominated_node_name: str = ""
    phase: str = "Pending"  # Pending | Running | Succeeded | Failed
    owner: str = ""  # e.g. "ReplicaSet/llm-server-7c9f6d5b8"
    created_at: float = 0.0
    started_at: float | None = None
    deleting: bool = False
    uid: str = field(
        default_factory=lambda: f"5d1c{next(_uids):04x}-0b7e-4c21-9a8f-3e6b2c1d{next(_uids):04x}"
    )

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def requests(self) -> dict[str, int]:
        """The pod's effective request: containers summed, init containers maxed, overhead."""
        total: dict[str, int] = {}
        for c in self.containers:
            for r, v in c.requests.items():
                total[r] = total.get(r, 0) + v
        for c in self.init_containers:
            for r, v in c.requests.items():
                total[r] = max(total.get(r, 0), v)
        for r, v in self.overhead.items():
            total[r] = total.get(r, 0) + v
        return total

    @property
    def limits(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for c in self.containers:
            for r, v in c.limits.items():
                total[r] = total.get(r, 0) + v
        return total

    @property
    def terminated(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


def _resources(raw: dict | None) -> dict[str, int]:
    return {str(r): quantity.parse(str(r), v) for r, v in (raw or {}).items()}


def _container(raw: dict) -> Container:
    res = raw.get("resources") or {}
    limits = _resources(res.get("limits"))
    requests = {**limits, **_resources(res.get("requests"))}  # requests default to limits
    return Container(raw.get("name", ""), raw.get("image", ""), requests, limits)


def pod_from_manifest(obj: dict, *, namespace: str | None = None, name: str | None = None,
                      priorities: dict[str, int] | None = None) -> Pod:  # fmt: skip
    """A Pod from a Pod manifest, or from a Deployment's pod template (named `name`)."""
    if obj.get("kind") == "Deployment":
        template = (obj.get("spec") or {}).get("template") or {}
        meta, spec = template.get("metadata") or {}, template.get("spec") or {}
        namespace = namespace or (obj.get("metadata") or {}).get("namespace")
    else:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    preferred = node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
    class_name = spec.get("priorityClassName", "") or ""
    priority = spec.get("priority")
    if priority is None:
        priority = (priorities or {}).get(class_name, 0)
    return Pod(
        name=name or meta.get("name", ""),
        namespace=namespace or meta.get("namespace") or "default",
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        containers=[_container(c) for c in spec.get("containers") or ()],
        init_containers=[_container(c) for c in spec.get("initContainers") or ()],
        overhead=_resources(spec.get("overhead")),
        node_selector={str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
        required_terms=None
        if required is None
        else tuple(term_from_dict(t) for t in required.get("nodeSelectorTerms") or ()),
        preferred_terms=tuple(
            (int(p.get("weight", 0)), term_from_dict(p.get("preference") or {})) for p in preferred
        ),
        tolerations=tuple(Toleration.from_dict(t) for t in spec.get("tolerations") or ()),
        priority=int(priority),
        priority_class_name=class_name,
        preemption_policy=spec.get("preemptionPolicy") or "PreemptLowerPriority",
        scheduler_name=spec.get("schedulerName") or "default-scheduler",
        node_name=spec.get("nodeName") or "",
    )
