"""A lab's headline figures: before, after, their ratio - measured in one run.

    >>> from labsupport import headline
    >>> h = headline.record("290", metric="p99 TTFT", before=812.0, after=41.0, unit="ms",
    ...                     print_fn=lambda *_: None)
    >>> round(h["ratio"], 1)
    19.8

When `srelab run` executes a notebook it sets SRELAB_HEADLINE_JSON; `record` then also writes
the figures there, so the command line reports what the notebook measured.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

ENV_VAR = "SRELAB_HEADLINE_JSON"


def _ratio(before: float, after: float, higher_is_better: bool) -> float:
    """How many times better `after` is than `before` (> 1 means improved)."""
    if higher_is_better:
        before, after = after, before
    if after == 0:
        return math.inf if before > 0 else 1.0
    return before / after


def record(
    lab: str | int,
    *,
    metric: str,
    before: float,
    after: float,
    unit: str,
    higher_is_better: bool = False,
    print_fn=print,
    **details,
) -> dict:
    """Print the headline and, under `srelab run`, append it to the JSON file it named.

    details: extra numbers worth keeping (pause counts, device name...), JSON-serialisable.
    """
    entry = {
        "lab": str(lab),
        "metric": metric,
        "before": float(before),
        "after": float(after),
        "unit": unit,
        "higher_is_better": higher_is_better,
        "ratio": _ratio(float(before), float(after), higher_is_better),
        "details": details,
    }
    print_fn(
        f"HEADLINE {entry['lab']}: {metric}: before {before:.4g} {unit}, after {after:.4g} {unit}"
        f" -> {format_ratio(entry['ratio'])} better"
    )
    path = os.environ.get(ENV_VAR)
    if path:
        p = Path(path)
        existing = json.loads(p.read_text()) if p.exists() and p.stat().st_size else []
        existing.append(entry)
        p.write_text(json.dumps([_json_safe(e) for e in existing], indent=2, default=str))
    return entry


def format_ratio(ratio: float | None) -> str:
    """'6.00x', or 'infinitely' when after is 0 (JSON stores such a ratio as null)."""
    if ratio is None or math.isinf(ratio):
        return "infinitely"
    return f"{ratio:.2f}x"


def _json_safe(entry: dict) -> dict:
    """Strict JSON has no Infinity: an infinite ratio is written as null plus a flag."""
    ratio = entry.get("ratio")
    if isinstance(ratio, float) and math.isinf(ratio):
        return {**entry, "ratio": None, "ratio_infinite": True}
    return entry
