"""`hint("NNN", level)`: up to three hints per exercise, from a nudge to the mechanism.

    >>> from labsupport import hints
    >>> hints.levels(290)  # doctest: +SKIP
    {'share_of_slow_requests_in_gc': 3, 'after_warmup': 3}

Each lab's hints live in `labsupport/scenarios/<symptom>/hints.py` as
`HINTS = {"exercise_name": ("first", "second", "third")}`. The first hint never names the
cause. Every hint shown is recorded in the transcript, so an interviewer sees which were used.
"""

from __future__ import annotations

import importlib

from labsupport import labs, session


def table(lab_key) -> dict[str, tuple[str, ...]]:
    """The lab's hints: exercise -> hints in increasing strength ({} if it has none)."""
    lab = labs.get(lab_key)
    try:
        module = importlib.import_module(f"labsupport.scenarios.{lab.symptom}.hints")
    except ModuleNotFoundError:
        return {}
    return dict(getattr(module, "HINTS", {}))


def levels(lab_key) -> dict[str, int]:
    return {name: len(h) for name, h in table(lab_key).items()}


def hint(lab_key, level: int = 1, exercise: str | None = None) -> str:
    """Print hint `level` (1-3) for `exercise` (default: the lab's first exercise) and record it."""
    lab = labs.get(lab_key)
    known = table(lab)
    if not known:
        raise LookupError(f"lab {lab.number} has no hints")
    if exercise is None:
        exercise = next(iter(known))
    if exercise not in known:
        raise LookupError(f"lab {lab.number} has hints for {sorted(known)}, not {exercise!r}")
    ladder = known[exercise]
    if not isinstance(level, int) or not 1 <= level <= len(ladder):
        raise ValueError(f"{exercise} has hints 1-{len(ladder)}, not {level!r}")
    text = ladder[level - 1]
    session.record("hint", exercise=exercise, level=level)
    print(f"Hint {level}/{len(ladder)} for {exercise}: {text}")
    return text
