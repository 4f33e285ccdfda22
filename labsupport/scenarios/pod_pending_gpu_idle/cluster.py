"""The incident's cluster, the pending Deployment, and a manifest applied to a fresh copy.

    >>> from labsupport.scenarios.pod_pending_gpu_idle import cluster, variant
    >>> incident = cluster.incident(variant(1))
    >>> for part in incident.message.split(". "):
    ...     print(part)
    0/5 nodes are available: 1 node(s) didn't match Pod's node affinity/selector,
      4 node(s) had untolerated taint(s)
    no new claims to deallocate, preemption: 0/5 nodes are available:
      5 Preemption is not helpful for scheduling.
    >>> outcome = cluster.apply(variant(1), incident.manifest.replace(
    ...     'value: "present"', 'value: "true"'))
    >>> outcome.node in variant(1).serving_nodes, outcome.evicted
    (True, ())

The cluster: a CPU node, the serving pool's H100 nodes (label `pool=serving`, tainted
`nvidia.com/gpu=<value>:NoSchedule` as the GPU operator's node pools often are), and a burst
node (`pool=burst`, tainted `pool=burst:NoSchedule`) that the runbook lets serving pods use
only while a serving node is out of service. Serving replicas (priority class `llm-serving`,
1000) fill the pool but for the room the variant's cause takes away; batch jobs (priority 0)
fill the burst node but for the new replica's size. The scheduler is
`labsupport.k8s.scheduling`, a stand-in for kube-scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from labsupport.k8s import manifests
from labsupport.k8s.scheduling import Cluster, Container, Node, Pod, Taint, pod_from_manifest
from labsupport.scenarios.pod_pending_gpu_idle import GPU_TAINT_KEY, PRODUCT, PRODUCT_KEY, Variant

GPU = "nvidia.com/gpu"
GPUS_PER_NODE = 8
MIG_PER_GPU = {
    "nvidia.com/mig-3g.40gb": 2,
    "nvidia.com/mig-2g.20gb": 3,
    "nvidia.com/mig-1g.10gb": 7,
}
PRIORITY_CLASSES = {"llm-serving": 1000, "batch": 0}
BURST_NODE = "gpu-h100-burst-1"
BURST_TAINT = Taint("pool", "burst", "NoSchedule")
NAMESPACE = "serving"
POD_NAME = "llm-server-6d9f7c5b84-q7x2m"
NODE_ALLOC = {"cpu": 190000, "memory": 2015 * 2**30, "ephemeral-storage": 3500 * 2**30, "pods": 110}


@dataclass(frozen=True)
class Incident:
    """The cluster as the page found it: the pending pod, its manifest, its last event."""

    cluster: Cluster
    pod: Pod
    manifest: str  # the Deployment's YAML, as deployed
    message: str  # the FailedScheduling message

    @property
    def replicas_running(self) -> int:
        return replicas_running(self.cluster)


@dataclass(frozen=True)
class Outcome:
    """What the scheduler did with one applied manifest, on a fresh copy of the cluster."""

    node: str | None  # where the new replica went (None: still pending)
    pool: str  # that node's pool label ("" if pending)
    evicted: tuple[str, ...]  # namespace/name of every pod preempted for it
    message: str  # the last event for the new replica
    requested: dict  # the replica's requests (resource -> amount)
    errors: tuple[str, ...] = ()  # why the manifest was refused (schema or scope)
    replicas_running: int = 0  # llm-server pods bound to a node afterwards


def replicas_running(c: Cluster) -> int:
    """llm-server pods bound to a node."""
    return sum(1 for p in c.pods.values() if p.name.startswith("llm-server") and p.node_name)


def manifest(v: Variant) -> str:
    """The llm-server Deployment as deployed (the cause's mistake included)."""
    resource = GPU
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm-server
  namespace: {NAMESPACE}
spec:
  replicas: {len(v.serving_nodes) * 2 + 1}
  selector:
    matchLabels: {{app: llm-server}}
  template:
    metadata:
      labels: {{app: llm-server}}
    spec:
      nodeSelector:
        {PRODUCT_KEY}: "{v.selector_value}"
      tolerations:
      - key: {GPU_TAINT_KEY}
        operator: Equal
        value: "{v.toleration_value}"
        effect: NoSchedule
      containers:
      - name: server
        image: registry.internal/llm-server:2026.11.3
        args: [--tensor-parallel-size, "{v.gpus}"]
        resources:
          requests: {{cpu: "16", memory: 200Gi}}
          limits: {{{resource}: {v.gpus}, memory: 200Gi}}
"""


def _node(name: str, pool: str, taint: Taint, gpus: dict[str, int], capacity=None) -> Node:
    labels = {"kubernetes.io/hostname": name, "pool": pool, PRODUCT_KEY: PRODUCT,
              "nvidia.com/gpu.count": str(GPUS_PER_NODE)}  # fmt: skip
    if any(r.startswith("nvidia.com/mig-") for r in gpus):
        labels["nvidia.com/mig.strategy"] = "mixed"
    return Node(name, labels=labels, taints=[taint], capacity={**NODE_ALLOC, **(capacity or gpus)},
                allocatable={**NODE_ALLOC, **gpus})  # fmt: skip


def _pod(key: str, node: str, requests: dict[str, int], priority: int, cls: str, owner: str):
    namespace, name = key.split("/")
    return Pod(name, namespace, containers=[Container("main", requests=dict(requests),
               limits=dict(requests))], node_name=node, priority=priority,
               priority_class_name=cls, owner=owner, created_at=-86400.0)  # fmt: skip


def build(v: Variant) -> Cluster:
    """A fresh copy of the incident's cluster, every running pod in place, nothing pending."""
    c = Cluster(now_s=0.0, priority_classes=PRIORITY_CLASSES)
    taint = Taint(GPU_TAINT_KEY, v.taint_value, "NoSchedule")
    c.add_node(Node("cpu-1", labels={"kubernetes.io/hostname": "cpu-1", "pool": "cpu"},
                    capacity=dict(NODE_ALLOC), allocatable=dict(NODE_ALLOC)))  # fmt: skip
    per_node_slices = MIG_PER_GPU[v.mig_profile] * GPUS_PER_NODE
    replica = 0
    for name in v.serving_nodes:
        if v.cause == "mig_resource_name":
            gpus = {GPU: 0, v.mig_profile: per_node_slices}
            node = _node(name, "serving", taint, gpus)
            unit, total = v.mig_profile, per_node_slices
        elif v.cause == "unhealthy_device" and name == v.victim_node:
            node = _node(name, "serving", taint, {GPU: GPUS_PER_NODE - 1}, {GPU: GPUS_PER_NODE})
            unit, total = GPU, GPUS_PER_NODE
        else:
            node = _node(name, "serving", taint, {GPU: GPUS_PER_NODE})
            unit, total = GPU, GPUS_PER_NODE
        c.add_node(node)
        # the room the new replica needs, on the victim node only (an idle pod takes it)
        used = total - (v.gpus if name == v.victim_node else 0)
        if v.cause == "idle_pod" and name == v.victim_node:
            c.add_pod(_pod(v.idle_pod, name, {unit: v.gpus}, 0, "", "StatefulSet/" +
                           v.idle_pod.split("/")[1].rsplit("-", 1)[0]))  # fmt: skip
        while used > 0:
            take = min(max(v.gpus, total // 4), used)
            c.add_pod(_pod(f"{NAMESPACE}/llm-server-6d9f7c5b84-r{replica:02d}", name,
                           {unit: take, "cpu": 16000, "memory": 200 * 2**30}, 1000, "llm-serving",
                           "ReplicaSet/llm-server-6d9f7c5b84"))  # fmt: skip
            replica += 1
            used -= take
    c.add_node(_node(BURST_NODE, "burst", BURST_TAINT, {GPU: GPUS_PER_NODE}))
    burst_used = GPUS_PER_NODE - v.gpus
    for i in range(burst_used):
        key = f"batch/embed-backfill-{i}"
        c.add_pod(_pod(key, BURST_NODE, {GPU: 1}, 0, "batch", "Job/embed-backfill"))
    return c


def _template_pod(obj: dict) -> Pod:
    pod = pod_from_manifest(obj, name=POD_NAME, priorities=PRIORITY_CLASSES)
    pod.owner = "ReplicaSet/llm-server-6d9f7c5b84"
    return pod


def incident(v: Variant, attempts: int = 6, interval_s: float = 60.0) -> Incident:
    """The incident as found: the new replica tried `attempts` times, `interval_s` apart."""
    c = build(v)
    text = manifest(v)
    pod = _template_pod(yaml.safe_load(text))
    c.add_pod(pod)
    for _ in range(attempts):
        c.schedule_pending()
        c.advance(interval_s)
    return Incident(c, pod, text, c.events_for(pod)[-1].message)


def apply(v: Variant, text: str) -> Outcome:
    """`kubectl apply` of a fixed Deployment: validated against the strict schema, then its new
    replica scheduled on a fresh copy of the incident's cluster."""
    try:
        obj = manifests.load(text)
    except manifests.ManifestError as e:
        return Outcome(None, "", (), "", {}, tuple(e.errors))
    errors = [] if isinstance(obj.get("kind"), str) else ["kind: required field is missing"]
    errors += manifests.schema_errors(obj) if not errors else []
    if not errors and (obj.get("apiVersion"), obj.get("kind")) != ("apps/v1", "Deployment"):
        errors.append("kind: the fix is the llm-server Deployment (apps/v1)")
    if errors:
        return Outcome(None, "", (), "", {}, tuple(errors))
    c = build(v)
    before = set(c.pods)
    pod = _template_pod(obj)
    c.add_pod(pod)
    c.schedule_pending()
    evicted = tuple(sorted(before - set(c.pods)))
    node = pod.node_name or None
    pool = c.nodes[node].labels.get("pool", "") if node in c.nodes else ""
    message = c.events_for(pod)[-1].message
    return Outcome(node, pool, evicted, message, dict(pod.requests), (), replicas_running(c))
