"""Lab 297, collective operation timed out: a two-rank decode job that stops, and its evidence.

    >>> from labsupport.scenarios import collective_timeout as scenario
    >>> v = scenario.variant(0)
    >>> v.quiet, v.plan.checkpoint_s
    (Quiet(rank=1, step=5, op='all_reduce'), 0.8)
    >>> [q.op for q in scenario.variant(0).grading_plan().quiet]
    ['all_reduce', 'all_gather', 'broadcast', 'all_reduce', 'all_reduce']

Modules: `job` (the decode loop each rank runs, what a rank has per step, the production step
function), `runs` (the job launched as the incident, with the lab's debug settings, with a
step function or settings of yours), `plots` (ranks over time), `hints`. `variant(seed)` says
what a seed changes: which rank's own state runs empty, in which step and for which of the
step's three collectives; the sizes of the tensors; how often rank 0 saves a checkpoint and
how long that takes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from labsupport.scenarios.collective_timeout.job import OPS, Plan, Quiet

QUIETS = (  # (rank, step, op): rank 0 always takes part in the broadcast (it is the source)
    (1, 5, "all_reduce"),
    (0, 7, "all_gather"),
    (1, 4, "broadcast"),
    (0, 6, "all_reduce"),
    (1, 8, "all_gather"),
    (1, 6, "broadcast"),
    (0, 3, "all_gather"),
)
SIZES = ((4, 32), (6, 48), (4, 64), (8, 32), (6, 40))  # (requests per rank, hidden)
CHECKPOINTS = ((4, 0.8), (3, 0.6), (5, 1.0), (4, 0.7))  # (every n steps, seconds)


@dataclass(frozen=True)
class Variant:
    """One incident: where a rank's own state runs empty, and the job around it."""

    seed: int
    quiet: Quiet
    plan: Plan  # the production job, with that one empty state

    @property
    def healthy(self) -> Plan:
        """The same job on a day when every rank has something for every collective."""
        return replace(self.plan, quiet=())

    def grading_plan(self) -> Plan:
        """A job in which every kind of empty state happens, on both ranks, some twice in one
        step: a step function that is right for all of them finishes it."""
        other = 1 - self.quiet.rank
        steps = self.plan.steps - 2
        late = steps - 2
        quiet = (
            self.quiet,
            Quiet(other, 2, "all_gather"),
            Quiet(1, 3, "broadcast"),
            Quiet(0, late, "all_reduce"),
            Quiet(1, late, "all_reduce"),
        )
        quiet = tuple(dict.fromkeys(quiet))  # the variant's own may be one of them
        return replace(self.plan, quiet=quiet, steps=steps)


def variant(seed: int) -> Variant:
    """The incident of `seed` (0 is the solution notebook's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rank, step, op = QUIETS[seed % len(QUIETS)]
    per_rank, hidden = SIZES[seed % len(SIZES)]
    every, checkpoint_s = CHECKPOINTS[seed % len(CHECKPOINTS)]
    quiet = Quiet(rank, step, op)
    plan = Plan(
        steps=12,
        per_rank=per_rank,
        hidden=hidden,
        seed=seed,
        quiet=(quiet,),
        checkpoint_every=every,
        checkpoint_s=checkpoint_s,
    )
    return Variant(seed=seed, quiet=quiet, plan=plan)


__all__ = ["OPS", "Plan", "Quiet", "Variant", "variant"]
