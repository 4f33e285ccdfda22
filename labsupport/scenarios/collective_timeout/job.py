"""Lab 297's job: a tensor-parallel decode loop on two ranks, and what each rank has per step.

    >>> from labsupport.scenarios.collective_timeout import job
    >>> plan = job.Plan(steps=6, per_rank=4, hidden=16, seed=3)
    >>> plan.batch, plan.collectives_per_step
    (8, 3)
    >>> job.tokens_for(plan, 0).tolist() == job.tokens_for(plan, 0).tolist()
    True

Every step, as a tensor-parallel server with an expert layer runs it: rank 0's scheduler picks
the batch (token ids) and broadcasts it; each rank computes its experts' output for the tokens
routed to it, and an all_reduce sums the ranks' parts into the hidden state; each rank samples
the next token of its own requests, and an all_gather puts the batch's tokens together. Rank 0
also saves a checkpoint every few steps while the others wait for the next batch (a sleep of
`checkpoint_s` stands in for the write). `decode_step(work)` is the production code; `serve` is
the loop each rank runs (`entry` for `labsupport.distributed.launch`), with any step function.
What a rank has in a step is a `StepWork`; the plan's `quiet` entries say where a rank has
nothing of its own for one of the three (no token routed to its experts, all its requests
finished, a batch it believes unchanged). Values are integers held in floats, so sums are exact
and the grader can recompute every step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

OPS = ("broadcast", "all_reduce", "all_gather")  # the order every step issues them in
FINISHED = -1  # the token id a rank reports for requests that have already finished
VOCAB = 512


@dataclass(frozen=True)
class Quiet:
    """In `step`, `rank` has nothing of its own for the collective `op`."""

    rank: int
    step: int
    op: str  # one of OPS


@dataclass(frozen=True)
class Plan:
    """The job: its sizes, its timing, and where a rank's own state is empty."""

    steps: int = 14
    per_rank: int = 4  # requests each rank samples for
    hidden: int = 32
    seed: int = 0
    world_size: int = 2
    quiet: tuple = ()  # Quiet entries
    checkpoint_every: int = 4  # rank 0 saves a checkpoint before steps 4, 8, ...
    checkpoint_s: float = 0.8
    step_s: float = 0.03  # the forward pass (a sleep: the collectives are what matters here)

    @property
    def batch(self) -> int:
        return self.per_rank * self.world_size

    @property
    def collectives_per_step(self) -> int:
        return len(OPS)

    def is_quiet(self, rank: int, step: int, op: str) -> bool:
        return any(q == Quiet(rank, step, op) for q in self.quiet)

    def seq(self, step: int, op: str) -> int:
        """The collective sequence number of `op` in `step` (the flight recorder counts from 1)."""
        return step * len(OPS) + OPS.index(op) + 1


def _generator(*key: int):
    import torch

    g = torch.Generator()
    g.manual_seed(hash(key) & 0x7FFFFFFF)
    return g


def tokens_for(plan: Plan, step: int):
    """The batch rank 0's scheduler picks in `step` (int64 token ids)."""
    import torch

    return torch.randint(0, VOCAB, (plan.batch,), generator=_generator(plan.seed, 1, step))


def _experts(plan: Plan, rank: int):
    import torch

    return torch.randint(
        -8, 9, (VOCAB, plan.hidden), generator=_generator(plan.seed, 2, rank)
    ).float()


def partial_for(plan: Plan, rank: int, tokens):
    """Rank `rank`'s experts' part of the hidden state for `tokens` (integer-valued floats)."""
    return _experts(plan, rank)[tokens.cpu()]


def sample_for(plan: Plan, rank: int, hidden):
    """The next token of rank `rank`'s own requests, from the summed hidden state."""
    rows = hidden.cpu()[rank * plan.per_rank : (rank + 1) * plan.per_rank]
    return (rows.sum(dim=1).long() * (rank + 3)).remainder(VOCAB)


@dataclass
class StepWork:
    """What one rank has in one step (built by `serve`, handed to the step function).

    tokens: the batch (int64, `batch_shape`) on rank 0; None on the other ranks.
    previous_tokens: the batch this rank used in the previous step (None in step 0).
    needs_batch: False when this rank believes the batch has not changed since last step.
    expert_output(tokens): this rank's part of the hidden state (float32, `hidden_shape`),
        None when no token of the batch was routed to this rank's experts.
    has_live_requests: False when every request this rank samples for has finished.
    sample(hidden): the next tokens of this rank's requests (int64, `out_shape`), from the
        hidden state summed over all ranks.
    """

    rank: int
    world_size: int
    step: int
    device: str
    tokens: object
    previous_tokens: object
    needs_batch: bool
    has_live_requests: bool
    batch_shape: tuple
    hidden_shape: tuple
    out_shape: tuple
    _plan: Plan = field(repr=False)

    def expert_output(self, tokens):
        if self._plan.is_quiet(self.rank, self.step, "all_reduce"):
            return None
        return partial_for(self._plan, self.rank, tokens).to(self.device)

    def sample(self, hidden):
        return sample_for(self._plan, self.rank, hidden).to(self.device)


def work_for(plan: Plan, rank: int, step: int, device: str = "cpu", previous=None) -> StepWork:
    """What rank `rank` has in `step`."""
    return StepWork(
        rank=rank,
        world_size=plan.world_size,
        step=step,
        device=device,
        tokens=tokens_for(plan, step).to(device) if rank == 0 else None,
        previous_tokens=previous,
        needs_batch=not plan.is_quiet(rank, step, "broadcast"),
        has_live_requests=not plan.is_quiet(rank, step, "all_gather"),
        batch_shape=(plan.batch,),
        hidden_shape=(plan.batch, plan.hidden),
        out_shape=(plan.per_rank,),
        _plan=plan,
    )


def decode_step(work: StepWork) -> dict:
    """One decode step as production runs it."""
    import torch
    import torch.distributed as dist

    if work.rank == 0 or work.needs_batch:
        tokens = (
            work.tokens
            if work.rank == 0
            else torch.empty(work.batch_shape, dtype=torch.int64, device=work.device)
        )
        dist.broadcast(tokens, src=0)
    else:
        tokens = work.previous_tokens
    hidden = work.expert_output(tokens)
    if hidden is not None:
        dist.all_reduce(hidden)
    else:
        hidden = torch.zeros(work.hidden_shape, device=work.device)
    out = None
    if work.has_live_requests:
        mine = work.sample(hidden)
        parts = [torch.empty_like(mine) for _ in range(work.world_size)]
        dist.all_gather(parts, mine)
        out = torch.cat(parts)
    return {"tokens": tokens, "hidden": hidden, "out": out}


def _summary(result, work: StepWork) -> dict:
    """What the grader recomputes: exact integer checksums of the step's three results."""
    import torch

    if not isinstance(result, dict):
        raise TypeError(f"a step function must return a dict, got {type(result).__name__}")
    out = {"step": work.step}
    tokens, hidden, gathered = (result.get(k) for k in ("tokens", "hidden", "out"))
    out["tokens"] = None if tokens is None else [int(t) for t in torch.as_tensor(tokens).cpu()]
    out["hidden"] = None if hidden is None else int(torch.as_tensor(hidden).cpu().double().sum())
    out["out"] = None if gathered is None else [int(t) for t in torch.as_tensor(gathered).cpu()]
    return out


def serve(ctx, plan: Plan, step=None) -> list[dict]:
    """The decode loop of one rank (an entry for `launch.run_job`): `step` (default
    `decode_step`) every step, rank 0's checkpoint every `checkpoint_every` steps."""
    fn = decode_step if step is None else step
    previous, results = None, []
    for n in range(plan.steps):
        if ctx.rank == 0 and n and n % plan.checkpoint_every == 0:
            ctx.progress(checkpoint=n)
            time.sleep(plan.checkpoint_s)
        time.sleep(plan.step_s)
        work = work_for(plan, ctx.rank, n, ctx.device, previous)
        result = fn(work)
        summary = _summary(result, work)
        previous = result.get("tokens")
        results.append(summary)
        ctx.progress(step=n)
    return results
