"""The requests a variant's server sees: batch shapes in arrival order and their token ids.

    >>> from labsupport.scenarios.memory_grows_with_traffic import traffic
    >>> from labsupport.scenarios.memory_grows_with_traffic import variant
    >>> shapes = traffic.shapes(variant(0), 5)
    >>> len(shapes), all(b == 4 for b, _ in shapes)
    (5, True)
    >>> traffic.token_ids(variant(0), 0, shapes[0]).shape == shapes[0]
    True

Prompt lengths follow a skewed distribution (many short prompts, a long tail), batch sizes
favour small batches; both are clipped to the variant's range, so one of them can be fixed.
Same variant, same index, same request, in any process.
"""

from __future__ import annotations

import numpy as np

__all__ = ["shapes", "token_ids", "distinct"]


def _draw(rng: np.random.Generator, lo: int, hi: int, median: float, sigma: float) -> int:
    if lo == hi:
        return lo
    return int(np.clip(round(rng.lognormal(np.log(median), sigma)), lo, hi))


def shapes(variant, n: int) -> list[tuple[int, int]]:
    """The first `n` requests' (batch, length), in arrival order."""
    rng = np.random.default_rng([294, variant.seed, 1])
    out = []
    for _ in range(n):
        batch = _draw(rng, *variant.batch, median=variant.batch_median, sigma=0.8)
        length = _draw(rng, *variant.length, median=variant.length_median, sigma=0.7)
        step = variant.length_step
        out.append((batch, min(variant.length[1], -(-length // step) * step)))
    return out


def token_ids(variant, index: int, shape: tuple[int, int]) -> np.ndarray:
    """Request `index`'s token ids, int64 of `shape`."""
    rng = np.random.default_rng([294, variant.seed, 2, index])
    return rng.integers(0, variant.vocab_size, size=shape, dtype=np.int64)


def distinct(seq: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The distinct shapes of `seq`, in order of first appearance."""
    return list(dict.fromkeys(seq))
