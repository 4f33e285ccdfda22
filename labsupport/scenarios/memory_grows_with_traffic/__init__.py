"""Lab 294, GPU memory grows with traffic: the compiled server, its traffic, runs and plots.

    >>> from labsupport.scenarios import memory_grows_with_traffic as scenario
    >>> v = scenario.variant(0)
    >>> v.batch, v.length[0], v.requests("suite") < v.requests("full")
    ((4, 4), 8, True)
    >>> scenario.variant(1).batch != v.batch
    True

The incident: a prefill server whose release turned on `torch.compile(mode="reduce-overhead")`
for its model (`model.BatchedLM`, the serving labs' tiny transformer over a batch of prompts).
`variant(seed)` is what a seed changes: the deployment's compile settings (`dynamic=`, the
recompile limit), which dimension of the requests varies (batch size or prompt length) and over
what range, the traffic itself. The notebook runs the server as deployed and the learner's fix
in fresh processes (`server.run`), reads the on-call evidence (`evidence`) and draws the runs
(`figures`).

Modules: `model`, `traffic` (request shapes and ids), `server` (a run in a fresh process, as
data), `figures`, `hints`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labsupport.scenarios.memory_grows_with_traffic.server import (
    MiB,
    RequestRecord,
    Run,
    evidence,
    run,
)

__all__ = ["MiB", "RequestRecord", "Run", "Variant", "evidence", "run", "variant"]

_REQUESTS = {"full": 110, "suite": 50}


@dataclass(frozen=True)
class Variant:
    """One incident: the deployment's compile settings and its traffic."""

    seed: int
    dynamic: bool | None  # torch.compile(dynamic=...) as deployed (None is torch's default)
    recompile_limit: int  # torch._dynamo.config.recompile_limit as deployed (torch's is 8)
    batch: tuple[int, int]  # batch sizes the server sees (lowest, highest)
    length: tuple[int, int]  # prompt lengths in tokens (lowest, highest)
    batch_median: float
    length_median: float
    length_step: int = 1  # prompt lengths are rounded up to a multiple of this
    vocab_size: int = 512

    @property
    def max_batch(self) -> int:
        return self.batch[1]

    @property
    def max_length(self) -> int:
        return self.length[1]

    def requests(self, scale: str = "full") -> int:
        """How many requests a run serves at this session scale."""
        return _REQUESTS[scale]


def variant(seed: int) -> Variant:
    """The incident seed `seed` makes (same seed, same incident, on any machine)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([294, seed])
    kind = seed % 4  # 0: default dynamic, lengths vary; 1: dynamic=False, batch sizes vary;
    # 2: default dynamic, batch sizes vary; 3: dynamic=False with a raised recompile limit,
    # lengths vary in steps of 16 tokens
    dynamic = None if kind in (0, 2) else False
    limit = 8 if kind != 3 else 32
    step = 16 if kind == 3 else 1
    if kind in (0, 3):  # fixed batch, prompt lengths vary
        batch = (int(rng.choice([4, 6, 8])),) * 2
        length = (step if step > 1 else 8, int(rng.choice([192, 224, 256])))
        medians = (float(batch[0]), float(rng.uniform(36, 56)))
    else:  # prompts padded to one length, batch sizes vary
        batch = (1, int(rng.choice([24, 32])))
        length = (int(rng.choice([48, 64])),) * 2
        medians = (float(rng.uniform(5, 8)), float(length[0]))
    return Variant(
        seed=seed,
        dynamic=dynamic,
        recompile_limit=limit,
        batch=batch,
        length=length,
        batch_median=round(medians[0], 1),
        length_median=round(medians[1], 1),
        length_step=step,
    )
