"""Lab 293, cold start takes minutes: a generated checkpoint, its loaders, cold and warm.

    >>> from labsupport.scenarios import slow_cold_start as scenario
    >>> v = scenario.variant(0)
    >>> v.extras, v.shape("full").params > v.shape("check").params > v.shape("suite").params
    ('adam', True)
    >>> scenario.variant(1).extras, scenario.variant(2).extras
    ('ema', 'adam_ema')

Modules: `checkpoint` (the weights, `train.pt` as training saves it and `model.safetensors` as
its publish step exports it, generated on disk), `measure` (a load timed cold and warm with
the kernel's counters, a table of loaders, a trial of yours against production's), `plots`,
`hints`. The page cache itself is `labsupport.pagecache`. `variant(seed)` says what a seed
changes: the model's size and shape, and what else the training job keeps in its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from labsupport.scenarios.slow_cold_start.checkpoint import Checkpoint, Shape

EXTRAS = ("adam", "ema", "adam_ema")
HIDDEN = ((512, 1536), (448, 1344), (576, 1536), (384, 1152))  # (hidden, ffn)
LAYERS = {"full": (12, 14, 9, 16), "check": (6, 7, 5, 8), "suite": (3, 3, 2, 4)}


@dataclass(frozen=True)
class Variant:
    """One incident: the model and what the training checkpoint carries besides it."""

    seed: int
    extras: str  # "adam", "ema" or "adam_ema": see checkpoint.BYTES_PER_PARAM

    def shape(self, scale: str = "full") -> Shape:
        """The model at a scale: "full" (the notebook), "check" (grading), "suite"."""
        hidden, ffn = HIDDEN[self.seed % len(HIDDEN)]
        return Shape(layers=LAYERS[scale][self.seed % len(HIDDEN)], hidden=hidden, ffn=ffn)


def variant(seed: int) -> Variant:
    """The incident of `seed` (0 is the solution notebook's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return Variant(seed=seed, extras=EXTRAS[seed % len(EXTRAS)])


__all__ = ["Checkpoint", "Shape", "Variant", "variant"]
