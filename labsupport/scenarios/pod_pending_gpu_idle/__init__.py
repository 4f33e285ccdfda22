"""Lab 282, pod pending while a GPU looks idle: the cluster of the incident and its variants.

    >>> from labsupport.scenarios import pod_pending_gpu_idle as scenario
    >>> v = scenario.variant(0)
    >>> v.cause, v.gpus, v.idle_pod
    ('idle_pod', 4, 'research/jupyter-alice-0')
    >>> sorted({scenario.variant(s).cause for s in range(5)}) == sorted(scenario.CAUSES)
    True

Modules: `cluster` (the nodes, the running pods, the pending Deployment's manifest, a manifest
applied to a fresh copy of the cluster and what the scheduler did with it), `evidence` (the
`kubectl` text an on-call engineer reads), `hints`. `variant(seed)` picks which of five causes
keeps the new replica pending, how many GPUs it asks for, which node is involved and whose
pod, and the spelling of the mistake; several causes print the same FailedScheduling reasons,
so the diagnosis needs the node and pod evidence of the run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CAUSES = (
    "idle_pod",  # a low-priority pod holds the GPUs and uses none of them
    "untolerated_taint",  # the pod's toleration does not match the GPU nodes' taint
    "unhealthy_device",  # the device plugin reports a GPU unhealthy: allocatable < capacity
    "mig_resource_name",  # the nodes are MIG-partitioned: nvidia.com/gpu is 0 there
    "selector_typo",  # the nodeSelector names a product label no node carries
)
PRODUCT = "NVIDIA-H100-80GB-HBM3"
PRODUCT_KEY = "nvidia.com/gpu.product"
GPU_TAINT_KEY = "nvidia.com/gpu"
MIG_PROFILES = ("nvidia.com/mig-3g.40gb", "nvidia.com/mig-2g.20gb", "nvidia.com/mig-1g.10gb")
TYPOS = ("NVIDIA-H100-80GB-HMB3", "NVIDIA-H100-80G-HBM3", "NVIDIA-H100-SXM5-80GB")
TAINT_VALUES = ("present", "true", "dedicated")
WRONG_TOLERATION_VALUES = ("true", "present", "yes")  # never the taint's value
IDLE_PODS = ("research/jupyter-alice-0", "research/finetune-sweep-3", "eval/nightly-eval-7")


@dataclass(frozen=True)
class Variant:
    """One incident: the cause, its size and the names it involves."""

    seed: int
    cause: str
    gpus: int  # GPUs (or MIG slices) the new replica asks for
    serving_nodes: tuple[str, ...]  # the serving pool's GPU nodes
    victim_node: str  # the serving node the cause is on (where the room would be)
    idle_pod: str  # namespace/name of the pod that holds GPUs and does nothing
    taint_value: str  # the value of the GPU nodes' nvidia.com/gpu taint
    toleration_value: str  # what the manifest tolerates (the incident's mistake if different)
    mig_profile: str  # the MIG resource the partitioned nodes advertise
    selector_value: str  # the product label value the manifest's nodeSelector asks for

    @property
    def taint(self) -> str:
        return f"{GPU_TAINT_KEY}={self.taint_value}:NoSchedule"


def variant(seed: int) -> Variant:
    """The incident of `seed` (0 is the solution notebook's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = random.Random(f"pod_pending_gpu_idle/{seed}")
    cause = CAUSES[seed % len(CAUSES)]
    count = 2 + rng.randrange(2)
    serving = tuple(f"gpu-h100-{i}" for i in rng.sample(range(1, 9), count))
    taint_value = TAINT_VALUES[seed % len(TAINT_VALUES)]
    return Variant(
        seed=seed,
        cause=cause,
        gpus=(4, 2, 4, 1, 2)[seed % 5],
        serving_nodes=serving,
        victim_node=serving[rng.randrange(count)],
        idle_pod=IDLE_PODS[seed % len(IDLE_PODS)],
        taint_value=taint_value,
        toleration_value=(
            WRONG_TOLERATION_VALUES[seed % 3] if cause == "untolerated_taint" else taint_value
        ),
        mig_profile=MIG_PROFILES[seed % len(MIG_PROFILES)],
        selector_value=TYPOS[seed % len(TYPOS)] if cause == "selector_typo" else PRODUCT,
    )


__all__ = ["CAUSES", "PRODUCT", "PRODUCT_KEY", "Variant", "variant"]
