"""Run lab 292's server in fresh processes: as shipped, and with a deployment's start-up code.

    >>> from labsupport.scenarios.cpu_pegged_gpu_idle import arms
    >>> arms.ARMS
    ('as shipped', 'fixed')

    run = arms.run_arm("as shipped", variant=v, scale=s)
    run = arms.run_arm("fixed", configure_frontend, variant=v, scale=s)
    result = arms.compare_arms(configure_frontend, variant=v, scale=s)
    result.ratio                   # the loop's longest stall, as shipped / fixed

Both arms serve the same seeded schedule with the same vocabulary (trained here once and sent
to each process). The fixed arm's code (a notebook function, sent by its code, or a grader's
ref) runs contained (`labsupport.contain`) like any learner code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from labsupport import isolate
from labsupport.scenarios.cpu_pegged_gpu_idle.records import Run, Scale, Variant

ARMS = ("as shipped", "fixed")
ENTRY = "labsupport.scenarios.cpu_pegged_gpu_idle.server:serve"
ONE_THREAD = isolate.ONE_BLAS_THREAD


class ArmFailed(RuntimeError):
    """An arm's process failed (the start-up code raised, crashed or timed out)."""


@dataclass
class Timed:
    """A run with what the caller saw from outside: the wall clock around it, leftovers."""

    run: Run
    wall_before: float
    wall_after: float
    left_running: list = field(default_factory=list)
    flags: list = field(default_factory=list)


def run_arm_timed(arm: str, configure=None, *, variant: Variant, scale: Scale) -> Timed:
    from labsupport import bpe, isolate, portable

    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    if arm == "as shipped":
        configure = None
    elif configure is None:
        raise ValueError("the fixed arm needs the start-up code (configure)")
    ranks = bpe.load().ranks
    before = time.time()
    r = isolate.run_function(
        ENTRY,
        arm,
        portable.sendable(configure),
        variant,
        scale,
        ranks=ranks,
        timeout_s=120 + 3 * (scale.warmup_s + scale.duration_s),
        extra_env=ONE_THREAD,
    )
    after = time.time()
    if not r.ok:
        raise ArmFailed(f"the {arm} arm failed: {r.error}")
    if not isinstance(r.value, Run):
        raise ArmFailed(f"the {arm} arm returned {type(r.value).__name__}, not a run")
    return Timed(r.value, before, after, list(r.left_running), list(r.flags))


def run_arm(arm: str, configure=None, *, variant: Variant, scale: Scale, progress=True) -> Run:
    """Run one arm in a fresh interpreter and return what it measured."""
    from labsupport import progress as bars

    expected = scale.warmup_s + scale.duration_s + 5.0
    with bars.timed(expected, f"{arm} server", disable=None if progress else True):
        return run_arm_timed(arm, configure, variant=variant, scale=scale).run


@dataclass
class Comparison:
    """Both arms on one schedule; ratio = the loop's longest stall as shipped / fixed."""

    shipped: Run
    fixed: Run

    @property
    def ratio(self) -> float:
        return self.shipped.max_lag_ms / max(self.fixed.max_lag_ms, 1.0)

    def table(self) -> str:
        rows = [f"{'arm':<11} {'max loop lag':>12} {'longest step gap':>16} {'chat served':>11}"]
        for a in (self.shipped, self.fixed):
            chat = [r for r in a.requests if r.role == "chat"]
            rows.append(
                f"{a.arm:<11} {a.max_lag_ms:>10.0f}ms {a.longest_step_gap_ms:>14.0f}ms "
                f"{sum(r.served for r in chat):>5}/{len(chat)}"
            )
        return "\n".join(rows)


def compare_arms(configure, *, variant: Variant, scale: Scale, shipped: Run | None = None,
                 progress: bool = True) -> Comparison:  # fmt: skip
    """The as-shipped arm (or the one given, same variant and scale) and the fixed arm."""
    if shipped is None:
        shipped = run_arm("as shipped", variant=variant, scale=scale, progress=progress)
    fixed = run_arm("fixed", configure, variant=variant, scale=scale, progress=progress)
    return Comparison(shipped, fixed)
