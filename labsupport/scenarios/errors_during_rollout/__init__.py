"""Lab 299, errors during every rollout: the variant of the incident and its cluster.

    >>> from labsupport.scenarios import errors_during_rollout as scenario
    >>> v = scenario.variant(0)
    >>> (v.replicas, v.node_gpus, v.max_tokens, v.longest_answer_s)
    (2, 3, 96, 40)
    >>> scenario.variant(1).replicas, scenario.variant(1).node_gpus
    (3, 3)
    >>> print(scenario.incident_page(v).splitlines()[0])
    Cluster and service facts (variant 0):

A seed varies the cluster and the service: the replicas, the GPUs on the node (one spare or
none), the cluster's timings, how long the longest answer streams, and the termination
settings production runs with (which decides what the failed requests have in common).
Seeds 0-2 are three hand-picked incidents; larger seeds draw from the same ranges.
Modules: `load` (the rollout under streaming load), `settings` (the manifests),
`handler_trial` (a SIGTERM handler on a simulated server), `plots`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from labsupport import wire

LONGEST_ANSWER_S = {48: 20, 64: 30, 96: 40}  # max_tokens -> slowest full answer, manifest s


@wire.record
@dataclass(frozen=True)
class Variant:
    """One incident: the cluster, the traffic, and what production's manifest sets."""

    seed: int
    replicas: int
    node_gpus: int  # GPUs on the node; every pod takes one
    propagation_s: float  # manifest seconds
    max_tokens: int  # the gateway's cap on an answer
    longest_answer_s: int  # the slowest full answer at that cap, manifest seconds
    server_budget_s: int  # production's --shutdown-timeout (0: vLLM's default)
    grace_s: int  # production's terminationGracePeriodSeconds
    clients: int = 6
    min_tokens: int = 16

    @property
    def spare_gpus(self) -> int:
        return self.node_gpus - self.replicas

    @property
    def production(self) -> str:
        """The Deployment as production runs it (YAML)."""
        from labsupport.scenarios.errors_during_rollout.settings import production_manifest

        return production_manifest(
            self.replicas,
            spare_gpus=self.spare_gpus,
            server_budget_s=self.server_budget_s or None,
            grace_s=None if self.grace_s == 30 else self.grace_s,
        )

    @property
    def staging(self) -> str:
        """The same Deployment as the staging cluster runs it: other termination settings."""
        from labsupport.scenarios.errors_during_rollout.settings import production_manifest

        if self.server_budget_s:
            budget, grace = None, None
        else:
            budget, grace = self.longest_answer_s, 4
        return production_manifest(
            self.replicas, spare_gpus=self.spare_gpus, server_budget_s=budget, grace_s=grace
        )

    def facts(self) -> dict:
        """What the team knows without measuring: the node, the replicas, the answers."""
        return {
            "replicas": self.replicas,
            "node_gpus": self.node_gpus,
            "max_tokens": self.max_tokens,
            "longest_answer_s": self.longest_answer_s,
        }


_HAND_PICKED = {
    0: dict(replicas=2, node_gpus=3, propagation_s=3, max_tokens=96, server_budget_s=0, grace_s=30),
    1: dict(replicas=3, node_gpus=3, propagation_s=4, max_tokens=48, server_budget_s=20, grace_s=4),
    2: dict(replicas=2, node_gpus=2, propagation_s=2, max_tokens=64, server_budget_s=0, grace_s=30),
}


def variant(seed: int) -> Variant:
    """The incident of this seed (0 is the one the solution notebook runs)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if seed in _HAND_PICKED:
        p = dict(_HAND_PICKED[seed])
    else:
        rng = random.Random(f"lab299-{seed}")
        replicas = rng.choice([2, 2, 3])
        max_tokens = rng.choice(sorted(LONGEST_ANSWER_S))
        short_grace = rng.random() < 0.5
        p = dict(
            replicas=replicas,
            node_gpus=replicas + rng.choice([0, 1]),
            propagation_s=rng.choice([2, 3, 4, 5]),
            max_tokens=max_tokens,
            server_budget_s=LONGEST_ANSWER_S[max_tokens] if short_grace else 0,
            grace_s=rng.choice([3, 4, 5]) if short_grace else 30,
        )
    return Variant(seed=seed, longest_answer_s=LONGEST_ANSWER_S[p["max_tokens"]], **p)


def incident_page(v: Variant) -> str:
    """The facts on-call has about this variant's cluster and service (no measurement)."""
    spare = v.spare_gpus
    return "\n".join(
        [
            f"Cluster and service facts (variant {v.seed}):",
            f"  Deployment llm: {v.replicas} replicas, 1 GPU each (nvidia.com/gpu: 1)",
            f"  node: {v.node_gpus} allocatable GPUs ({spare} free while the "
            f"{v.replicas} pods run)",
            f"  gateway: answers capped at max_tokens={v.max_tokens}; the slowest full answer "
            f"seen at peak load takes {v.longest_answer_s} s",
            f"  traffic: {v.clients} busy clients, each streaming one answer after another",
            "  kubectl rollout status: successfully rolled out, every deploy",
        ]
    )
