"""Small entries for `labsupport.distributed.launch`: its examples and tests use them.

    >>> from labsupport.distributed import examples
    >>> examples.__name__
    'labsupport.distributed.examples'

Each runs in every rank as `entry(ctx, ...)` (see `labsupport.distributed.rank`).
"""

from __future__ import annotations

import time


def sum_of_ranks(ctx) -> float:
    """all_reduce of each rank's number: 0 + 1 on two ranks."""
    import torch
    import torch.distributed as dist

    x = torch.tensor([float(ctx.rank)], device=ctx.device)
    dist.all_reduce(x)
    ctx.progress(step=0)
    return float(x.item())


def one_rank_goes_quiet(ctx, quiet_rank: int = 1, steps: int = 3, quiet_s: float = 60.0) -> int:
    """Every rank all_reduces `steps` times; `quiet_rank` then sleeps instead of the next one,
    so the others wait in a collective it never calls."""
    import torch
    import torch.distributed as dist

    x = torch.ones(4, device=ctx.device)
    for step in range(steps):
        dist.all_reduce(x)
        ctx.progress(step=step)
    if ctx.rank == quiet_rank:
        time.sleep(quiet_s)
    dist.all_reduce(x)
    return steps + 1


def fails_at_once(ctx) -> None:
    """Raises on rank 0 before any collective; the other rank waits in one."""
    import torch
    import torch.distributed as dist

    if ctx.rank == 0:
        raise ValueError("rank 0 gives up")
    dist.all_reduce(torch.ones(1, device=ctx.device))
