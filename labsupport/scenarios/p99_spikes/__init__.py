"""Lab 290, p99 latency spikes while p50 is fine: the server, its variants, runs and plots.

    >>> from labsupport.scenarios import p99_spikes
    >>> v = p99_spikes.variant(0)
    >>> v.seed, 60 <= v.arrival_rate_per_s <= 100
    (0, True)
    >>> p99_spikes.variant(1) != v
    True

`variant(seed)` is the incident a seed makes: traffic rate and sizes, the start-up state, the
request log's volume, whether a tenant sends long documents. The notebook builds its runs
from `variant(SEED)`; the checks grade against the same variant.

    run = p99_spikes.run_arm("default", variant=v, scale=p99_spikes.scale_for("full"))
    run.p99_ttft_ms, run.steps, run.collections, run.slow_callbacks

Modules: `server` (the asyncio server and its engine), `parts` (what a fix may change: the
scheduler, the request log, the handle), `state` (start-up state, requests), `monitors`
(`gc.callbacks` and slow-callback logs), `records` (what a run measured, as data), `arms` (runs
in fresh processes), `figures` (plots), `hints`.
"""

from __future__ import annotations

import numpy as np

from labsupport.scenarios.p99_spikes.arms import ArmFailed, compare_arms, run_arm
from labsupport.scenarios.p99_spikes.records import (
    STALL_MS,
    Collection,
    RequestRecord,
    Run,
    Scale,
    SlowCallback,
    Step,
    Variant,
    instrument_table,
    percentile_ms,
)

__all__ = [
    "STALL_MS",
    "ArmFailed",
    "Collection",
    "RequestRecord",
    "Run",
    "Scale",
    "SlowCallback",
    "Step",
    "Variant",
    "compare_arms",
    "instrument_table",
    "percentile_ms",
    "run_arm",
    "scale_for",
    "variant",
]

SCALES = {
    "full": Scale(warmup_s=1.5, duration_s=10.0),  # srelab run, a learner's notebook
    "suite": Scale(warmup_s=1.0, duration_s=6.0),  # the test suite's notebook run, the checks
}


def scale_for(name: str) -> Scale:
    """The arms' length at a session scale ("full" or "suite")."""
    return SCALES[name]


def variant(seed: int) -> Variant:
    """The incident seed `seed` makes (same seed, same incident, on any machine)."""
    rng = np.random.default_rng([290, seed])
    kind = seed % 3
    common = {
        "seed": seed,
        "arrival_rate_per_s": float(round(rng.uniform(70, 90))),
        "prompt_tokens": (32, 256),
        "output_tokens": (24, int(rng.integers(72, 97))),
        "flush_every_s": float(round(rng.uniform(1.5, 2.1), 2)),
    }
    quiet_volume_ms = float(round(rng.uniform(1.5, 3.0), 1))
    small_state = int(rng.integers(40, 81)) * 1000
    if kind == 0:
        return Variant(
            **common,
            heap_objects=int(rng.integers(50, 66)) * 10_000,
            logprobs_k=int(rng.integers(7, 11)),
            volume_ms=quiet_volume_ms,
            doc_every_s=0.0,
            doc_tokens=(0, 0),
        )
    if kind == 1:
        return Variant(
            **common,
            heap_objects=small_state,
            logprobs_k=0,
            volume_ms=float(int(rng.integers(180, 281))),
            doc_every_s=0.0,
            doc_tokens=(0, 0),
        )
    lo = int(rng.integers(24, 29)) * 1000
    return Variant(
        **common,
        heap_objects=small_state,
        logprobs_k=0,
        volume_ms=quiet_volume_ms,
        doc_every_s=float(round(rng.uniform(1.5, 2.1), 2)),
        doc_tokens=(lo, lo + 6000),
    )
