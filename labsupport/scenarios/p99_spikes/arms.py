"""Run lab 290's server in fresh processes, one arm after the other.

    >>> from labsupport.scenarios.p99_spikes import arms
    >>> arms.ARMS
    ('default', 'fixed')

    run = arms.run_arm("default", variant=v, scale=s)               # the server as shipped
    run = arms.run_arm("fixed", after_warmup, variant=v, scale=s)   # after_warmup(server) once
    result = arms.compare_arms(after_warmup, variant=v, scale=s)    # both, same seed
    result.ratio                                                    # default p99 / fixed p99

Every time is measured in the arm's own process with `time.perf_counter()`; ratios compare arms
run one after the other on the same schedule. A fix defined in a notebook is sent by its code
(`labsupport.portable`); it runs contained (`labsupport.contain`) like any learner code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from labsupport import isolate
from labsupport.scenarios.p99_spikes.records import Run, Scale, Variant

ARMS = ("default", "fixed")
ENTRY = "labsupport.scenarios.p99_spikes.server:serve"
# the loop owns one core: BLAS threads only spin against it (and against a busy machine)
ONE_THREAD = isolate.ONE_BLAS_THREAD


class ArmFailed(RuntimeError):
    """An arm's process failed (the fix raised, crashed or timed out)."""


@dataclass
class Timed:
    """A run with what the caller saw from outside: its wall clock and the process's time."""

    run: Run
    wall_before: float
    wall_after: float
    process_s: float
    flags: list = field(default_factory=list)


def run_arm_timed(
    arm: str,
    after_warmup=None,
    *,
    variant: Variant,
    scale: Scale,
    timeout_s: float | None = None,
    echo=None,
) -> Timed:
    """run_arm, plus the wall clock around it (for cross-checks)."""
    from labsupport import isolate, portable

    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    if arm == "default":
        after_warmup = None
    elif after_warmup is None:
        raise ValueError("the fixed arm needs an after_warmup")
    limit = timeout_s or 90 + 4 * (scale.warmup_s + scale.duration_s)
    hook = portable.sendable(after_warmup)
    before = time.time()
    r = isolate.run_function(
        ENTRY, arm, hook, variant, scale, timeout_s=limit, echo=echo, extra_env=ONE_THREAD
    )
    after = time.time()
    if not r.ok:
        raise ArmFailed(f"the {arm} arm failed: {r.error}")
    if not isinstance(r.value, Run):
        raise ArmFailed(f"the {arm} arm returned {type(r.value).__name__}, not a run")
    return Timed(r.value, before, after, r.duration_s, list(r.flags))


def run_arm(
    arm: str,
    after_warmup=None,
    *,
    variant: Variant,
    scale: Scale,
    timeout_s: float | None = None,
    progress: bool = True,
) -> Run:
    """Run one arm in a fresh interpreter and return what it measured.

    after_warmup (fixed arm): a function (one defined in a notebook is sent by its code), a
    ref with .load() (the grader's), "module:function", or a tuple of these, called in order
    with the server handle.
    """
    from labsupport import progress as bars

    expected = scale.warmup_s + scale.duration_s + 6.0
    with bars.timed(expected, f"{arm} arm", disable=None if progress else True):
        timed = run_arm_timed(arm, after_warmup, variant=variant, scale=scale, timeout_s=timeout_s)
    return timed.run


@dataclass
class Comparison:
    """Arms run one after the other; ratio = default p99 TTFT / fixed p99 TTFT."""

    default: Run
    fixed: Run

    @property
    def ratio(self) -> float:
        return self.default.p99_ttft_ms / self.fixed.p99_ttft_ms

    def table(self) -> str:
        head = f"{'arm':<8} {'requests':>8} {'p50 TTFT':>9} {'p99 TTFT':>9} {'p99 ITL':>8}"
        rows = [head]
        for a in (self.default, self.fixed):
            rows.append(
                f"{a.arm:<8} {len(a.requests):>8} {a.p50_ttft_ms:>7.1f}ms "
                f"{a.p99_ttft_ms:>7.1f}ms {a.p99_itl_ms:>6.1f}ms"
            )
        return "\n".join(rows)


def compare_arms(
    fix, *, variant: Variant, scale: Scale, default: Run | None = None, progress: bool = True
) -> Comparison:
    """The default arm (or the one given, from the same variant and scale) and the fixed arm."""
    if default is None:
        default = run_arm("default", variant=variant, scale=scale, progress=progress)
    fixed = run_arm("fixed", fix, variant=variant, scale=scale, progress=progress)
    return Comparison(default, fixed)
