"""Lab 280, GPU running hot: a node's GPU telemetry, the alert rules that watch it, a slowdown.

    >>> from labsupport.scenarios import gpu_running_hot as scenario
    >>> v = scenario.variant(0)
    >>> n = v.node()
    >>> len(n.gpus), n.spec.hostname
    (8, 'gpu-node-07')
    >>> "GPUThrottling" in scenario.page(v)
    True

Modules: `node` (a node's eight GPUs over 45 minutes as dcgm-exporter exports them: recorded
samples, modelled temperatures, one constructed slowdown), `alerts` (a rule file scored with the
real promtool: pages, false, missed), `live` (the GPU path: NVML sampled under a real GEMM, or
the H100 recording without a GPU), `plots`, `hints`. `variant(seed)` says what a seed changes:
which GPU slows down, what slows it (the kind of event NVIDIA's bits report), when, and what
the other seven GPUs do (idle, at work, in a warmer slot, in bursts, one changing clocks).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from labsupport.scenarios.gpu_running_hot.node import (
    HOSTNAME,
    INTERVAL_S,
    WINDOW_S,
    Event,
    Node,
    NodeSpec,
    build,
)

__all__ = ["Variant", "variant", "page", "INTERVAL_S", "WINDOW_S", "Event", "Node", "NodeSpec"]

KINDS = ("brake", "thermal", "fast_trigger")  # what slows the GPU down, by seed
GPUS = 8


@dataclass(frozen=True)
class Variant:
    """One night on the node: its spec (roles, the slowdown, the blip) and the page."""

    seed: int
    spec: NodeSpec

    def node(self) -> Node:
        return build(self.spec)


def layout(rng: random.Random, victim: int, gpus: int = GPUS) -> tuple[tuple[str, ...], int]:
    """Roles for the GPUs around the victim (busy itself): two idle, one warm, one or two in
    bursts, the rest busy; and the bursty GPU that changes clocks with a blip."""
    others = [g for g in range(gpus) if g != victim]
    rng.shuffle(others)
    roles = ["busy"] * gpus
    roles[others[0]] = roles[others[1]] = "idle"
    roles[others[2]] = "warm"
    roles[others[3]] = "bursty"
    if rng.random() < 0.5:
        roles[others[4]] = "bursty"
    return tuple(roles), others[3]


def variant(seed: int) -> Variant:
    """The incident of `seed` (0 is the solution notebook's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = random.Random(f"280-{seed}")
    kind = KINDS[seed % len(KINDS)]
    while True:  # the GPU that blips comes before the one that slows down, as on-call reads
        victim = rng.randrange(1, GPUS)
        roles, blipper = layout(rng, victim)
        if blipper < victim or seed % 2:
            break
    if kind == "thermal":  # the cooling degrades for ~15 minutes before the first bit
        event = Event(victim, kind, start_s=float(rng.randrange(240, 600, INTERVAL_S)))
    else:  # a power event comes at once and may pass
        start = float(rng.randrange(1200, 1800, INTERVAL_S))
        event = Event(victim, kind, start, end_s=start + rng.randrange(480, 840, INTERVAL_S))
    blip = (blipper, float(rng.randrange(300, WINDOW_S - 300, INTERVAL_S)))
    return Variant(seed, NodeSpec(roles=roles, seed=seed, event=event, blips=(blip,)))


def page(v: Variant) -> str:
    """The page on-call received, as text (it names the symptom, never the cause)."""
    rows = [
        ("replicas on the node", "8 single-GPU replicas of llm-decode, one per GPU"),
        ("node decode tokens/s", "down 6 % against the pool's other nodes since tonight"),
        ("alert GPUThrottling", "silenced 3 weeks ago: 'fires on every GPU, all the time'"),
        ("  expr", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS > 0"),
        ("alert GPUTooHot", "fires on and off on this node for weeks; ignored"),
        ("  expr", "DCGM_FI_DEV_GPU_TEMP > 82"),
        ("Xid, ECC errors", "none"),
        ("what changed", "nothing deployed; facilities worked in this row today"),
    ]
    table = "\n".join(f"  {k:<24} {val}" for k, val in rows)
    return (
        f"PAGE - SEV3 - {HOSTNAME}: decode throughput below its peers (capacity dashboard)\n\n"
        f"{table}\n\nThe pool's Prometheus scrapes dcgm-exporter every {INTERVAL_S} s; below are "
        f"the last {WINDOW_S // 60} minutes of every GPU of {HOSTNAME}."
    )
