"""Lab 285, "device-side assert triggered": the clients' traffic, the deployed server, reruns.

    >>> from labsupport.scenarios import device_side_assert as scenario
    >>> v = scenario.variant(0)
    >>> v.victim.id, v.victim.client
    ('req-0008', 'agent')
    >>> scenario.variant(1).layer != v.layer
    True

`variant(seed)` is the incident a seed makes: which client's request carries the id (so which
field, read by which part of the engine), which id, when it arrives, how fast traffic comes.
Modules: `traffic` (the requests as the gateway logged them, the tokenizer the clients use,
the model's config), `server` (the serving stack as deployed, with your checks plugged in),
`runs` (a replay against a fresh server, with probes), `rerun` (a failed batch replayed in a
fresh process, with an environment), `plots`, `hints`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from labsupport.scenarios.device_side_assert import traffic
from labsupport.scenarios.device_side_assert.traffic import (
    LAYERS,
    MODEL_CONFIG,
    TOKENIZER_V2,
    Call,
)

COUNTS = {"full": 30, "suite": 24}


@dataclass(frozen=True)
class Variant:
    seed: int
    layer: str  # the field the bad id is in: "prompt", "stop" or "allowed"
    victim_index: int  # the position of the victim's call in the traffic
    rate_per_s: float

    def calls(self, scale: str = "full") -> list[Call]:
        """The traffic of this incident, as the gateway logged it."""
        return traffic.calls_for(
            seed=self.seed,
            layer=self.layer,
            count=COUNTS[scale],
            victim_index=self.victim_index,
            rate_per_s=self.rate_per_s,
        )

    def bad_ids(self, scale: str = "full") -> list[str]:
        """The calls that carry an id the model does not have (the victim's among them)."""
        return traffic.bad_call_ids(
            seed=self.seed,
            layer=self.layer,
            count=COUNTS[scale],
            victim_index=self.victim_index,
            rate_per_s=self.rate_per_s,
        )

    @property
    def victim(self) -> Call:
        return self.calls("suite")[self.victim_index]


def variant(seed: int) -> Variant:
    """The incident of `seed` (0 is the solution notebook's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = random.Random(f"285-{seed}")
    return Variant(
        seed=seed,
        layer=LAYERS[seed % len(LAYERS)],
        victim_index=rng.randint(6, 9),
        rate_per_s=round(rng.uniform(7.0, 9.0), 1),
    )


__all__ = ["LAYERS", "MODEL_CONFIG", "TOKENIZER_V2", "Call", "Variant", "variant"]
