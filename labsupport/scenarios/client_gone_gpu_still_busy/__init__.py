"""Lab 286, clients leave and the GPU keeps generating: the chat stack and its variants.

    >>> from labsupport.scenarios.client_gone_gpu_still_busy import variant
    >>> v = variant(0)
    >>> v.workload.describe()
    '9 clients ask for 224 tokens and leave after 4; 3 ask for 32 tokens and read them all'
    >>> variant(0) == v, variant(1) == v
    (True, False)

The stack: clients -> the gateway (`gateway.py`) -> the chat-backend server (a real engine
behind an OpenAI-compatible API, streaming through a stream handler) -> the engine. A seed
picks the incident: how many clients leave, after how many tokens, how long the completions
they asked for, how many clients stay and read everything, and how the gateway treats the
server's connection when its client's goes away. `rounds` runs rounds and measures every
layer, `stream_probe` drives a stream handler the ways a server stops reading it, `plots`
draws the timeline, `hints` holds the exercises' hints.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from labsupport import wire
from labsupport.scenarios.client_gone_gpu_still_busy.rounds import Workload

__all__ = ["Variant", "variant"]


@wire.record
@dataclass(frozen=True)
class Variant:
    seed: int
    workload: Workload
    gateway: str  # the gateway's on_client_close in the incident: "close" | "read"


def variant(seed: int) -> Variant:
    """The incident of seed `seed` (the solution notebook runs the lab's default seed)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = random.Random(f"286/{seed}")
    workload = Workload(
        leaving=rng.randint(6, 10),
        leave_after_tokens=rng.randint(2, 6),
        leaving_max_tokens=rng.choice((128, 160, 192, 224, 256)),
        staying=rng.randint(2, 4),
        staying_max_tokens=rng.choice((16, 24, 32)),
    )
    return Variant(seed, workload, "read" if seed % 2 else "close")
