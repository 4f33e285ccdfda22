"""Lab 292, CPU at 100 % and GPU idle: the server, its variants, runs, stack dumps and plots.

    >>> from labsupport.scenarios import cpu_pegged_gpu_idle as lab
    >>> v = lab.variant(0)
    >>> v.seed, v.path in ("prompt", "stop", "usage")
    (0, True)
    >>> lab.variant(1) != v
    True

`variant(seed)` is the incident a seed makes: the traffic, the model's context length, what
the long text is, where it travels (the prompt, a stop sequence, or the prompt counted for a
token budget first) and when it comes. The notebook builds its runs from `variant(SEED)`; the
checks grade against the same variant.

    run = lab.run_arm("as shipped", variant=v, scale=lab.scale_for("full"))
    capture = lab.capture_stuck_server(v)          # py-spy dump (or faulthandler) of it

Modules: `frontend` (the request path), `traffic` (the schedule and its texts), `server` (the
asyncio server and its engine, measured), `capture` (dump the stuck server's stacks), `arms`
(runs in fresh processes), `figures`, `hints`, `records`.
"""

from __future__ import annotations

import numpy as np

from labsupport.scenarios.cpu_pegged_gpu_idle.arms import ArmFailed, compare_arms, run_arm
from labsupport.scenarios.cpu_pegged_gpu_idle.capture import capture_stuck_server, ptrace_status
from labsupport.scenarios.cpu_pegged_gpu_idle.records import (
    KINDS,
    PATHS,
    Capture,
    RequestRecord,
    Run,
    Scale,
    Variant,
)

__all__ = [
    "KINDS",
    "PATHS",
    "ArmFailed",
    "Capture",
    "RequestRecord",
    "Run",
    "Scale",
    "Variant",
    "capture_stuck_server",
    "compare_arms",
    "ptrace_status",
    "run_arm",
    "scale_for",
    "variant",
]

SCALES = {
    "full": Scale(warmup_s=0.5, duration_s=8.0),  # srelab run, a learner's notebook
    "suite": Scale(warmup_s=0.5, duration_s=6.0),  # the test suite's notebook run, the checks
}


def scale_for(name: str) -> Scale:
    """The arms' length at a session scale ("full" or "suite")."""
    return SCALES[name]


def variant(seed: int) -> Variant:
    """The incident seed `seed` makes (same seed, same incident, on any machine)."""
    rng = np.random.default_rng([292, seed])
    path = PATHS[seed % 3]
    kind = KINDS[(seed // 3 + seed) % 3]
    from labsupport import bpe

    max_model_len = int(rng.choice([144, 160, 176, 192]))
    cap = max_model_len * bpe.load().longest_token_chars  # more characters cannot fit
    return Variant(
        seed=seed,
        kind=kind,
        path=path,
        max_model_len=max_model_len,
        arrival_rate_per_s=float(round(rng.uniform(16, 24))),
        output_tokens=(16, int(rng.integers(28, 41))),
        big_chars=int(cap * rng.uniform(2.1, 2.3)),
        big_at_s=float(round(rng.uniform(0.15, 0.25), 2)),  # share of the window
        fit_chars=int(cap * rng.uniform(0.85, 0.95)),
        fit_at_s=float(round(rng.uniform(0.6, 0.7), 2)),
    )
