"""What the on-call engineer can read during the incident, as text: kubectl and DCGM.

    >>> from labsupport.scenarios.pod_pending_gpu_idle import cluster, evidence, variant
    >>> found = evidence.collect(cluster.incident(variant(0)))
    >>> sorted(found)
    ['describe_nodes', 'describe_pod', 'get_pods', 'gpu_utilization', 'manifest']
    >>> found["gpu_utilization"].splitlines()[0].split()[3:]
    ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_FB_USED', 'DCGM_FI_DEV_XID_ERRORS']

`gpu_utilization` is what a DCGM exporter's scrape says per GPU (the metric names are
dcgm-exporter's; the pod column is its Kubernetes pod mapping; the XID column is the last
XID error, 0 when none): in every variant some GPUs are idle, which is the page's symptom,
and which GPUs and why is the evidence. A device the device plugin reported unhealthy
(XID 79, fallen off the bus) is still listed by DCGM, without a pod.
"""

from __future__ import annotations

import random

from labsupport.k8s.scheduling.describe import describe_node, describe_pod, get_pods
from labsupport.k8s.scheduling.tabwriter import align
from labsupport.scenarios.pod_pending_gpu_idle.cluster import GPU, GPUS_PER_NODE, Incident

UNHEALTHY_XID = 79  # GPU has fallen off the bus


def gpu_utilization(incident: Incident, seed: int = 0) -> str:
    """One row per physical GPU of the GPU nodes: node, index, pod, util %, FB MiB, last XID."""
    rng = random.Random(f"dcgm/{seed}")
    c = incident.cluster
    rows = ["node\tgpu\tpod\tDCGM_FI_DEV_GPU_UTIL\tDCGM_FI_DEV_FB_USED\tDCGM_FI_DEV_XID_ERRORS"]
    for name, node in c.nodes.items():
        if not node.capacity.get(GPU) and not any(r.startswith("nvidia.com/mig-") for r in
                                                   node.capacity):  # fmt: skip
            continue
        owners: list[tuple[str, bool]] = []
        for pod in c.pods_on(name):
            units = sum(v for r, v in pod.requests.items() if r.startswith("nvidia.com/"))
            per_gpu = max(1, node.allocatable.get(GPU) and 1 or _slices_per_gpu(node))
            for _ in range(max(1, -(-units // per_gpu)) if units else 0):
                idle = pod.priority_class_name == "" and pod.namespace != "serving"
                owners.append((pod.key, idle))
        broken = node.capacity.get(GPU, 0) - node.allocatable.get(GPU, 0)
        for index in range(GPUS_PER_NODE):
            if index >= GPUS_PER_NODE - broken:
                rows.append(f"{name}\t{index}\t<none>\t0\t0\t{UNHEALTHY_XID}")
                continue
            if index < len(owners):
                key, idle = owners[index]
                util = 0 if idle else rng.randint(38, 91)
                fb = rng.randint(300, 700) if idle else rng.randint(61000, 76000)
                rows.append(f"{name}\t{index}\t{key}\t{util}\t{fb}\t0")
            else:
                rows.append(f"{name}\t{index}\t<none>\t0\t0\t0")
    return align("\n".join(rows) + "\n")


def _slices_per_gpu(node) -> int:
    slices = sum(v for r, v in node.allocatable.items() if r.startswith("nvidia.com/mig-"))
    return max(1, slices // GPUS_PER_NODE)


def collect(incident: Incident, seed: int = 0) -> dict[str, str]:
    """Every piece of evidence, by name: kubectl text, the DCGM table, the manifest."""
    c = incident.cluster
    gpu_nodes = [n for n, node in c.nodes.items() if node.labels.get("pool") != "cpu"]
    return {
        "describe_pod": describe_pod(c, incident.pod),
        "describe_nodes": "\n".join(describe_node(c, n) for n in gpu_nodes),
        "get_pods": get_pods(c),
        "gpu_utilization": gpu_utilization(incident, seed),
        "manifest": incident.manifest,
    }
