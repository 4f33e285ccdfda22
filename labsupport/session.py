"""The notebook's session: which lab, which variant (seed), at what scale; its transcript.

    >>> from labsupport import session
    >>> s = session.begin("290", seed=7, record=False)
    >>> s.seed, s.lab.number, session.seed_for("290"), session.scale()
    (7, 290, 7, 'full')

The first code cell of every lab calls `session.begin("NNN", seed=SEED)`. `SEED` picks the
variant of the incident (sizes, rates, which replica, which cause): `srelab start --seed` and
`srelab interview --seed` write it into the notebook, and `check()` grades against the same
variant. In a Jupyter kernel it also starts the transcript (`labsupport.transcript`).
`scale()` is "full" unless `SRELAB_SCALE=suite` (the test suite's smaller end-to-end run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from labsupport import labs, transcript

SCALES = ("full", "suite")
_current: Session | None = None


@dataclass
class Session:
    lab: labs.Lab
    seed: int
    transcript: transcript.Transcript | None = None


def _ipython():
    try:
        return get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return None


def begin(lab_key, seed: int | None = None, *, record: bool = True) -> Session:
    """Start lab `lab_key`'s session with variant `seed` (None: the lab's default)."""
    global _current
    lab = labs.get(lab_key)
    if seed is None:
        seed = lab.default_seed
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    ip = _ipython() if record else None
    old = _current
    if old is not None and old.transcript is not None and ip is not None:
        try:
            ip.events.unregister("post_run_cell", old.transcript.on_cell)
        except ValueError:
            pass
    record_to = None
    if ip is not None:
        nb = transcript.notebook_path()
        record_to = transcript.sidecar(nb) if nb else None
    t = transcript.Transcript(record_to, lab=lab.number, seed=seed) if ip is not None else None
    if t is not None:
        ip.events.register("post_run_cell", t.on_cell)
    _current = Session(lab, seed, t)
    return _current


def current() -> Session | None:
    return _current


def seed_for(lab_key) -> int:
    """The seed of this notebook's session for that lab, else the lab's default."""
    lab = labs.get(lab_key)
    if _current is not None and _current.lab.number == lab.number:
        return _current.seed
    return lab.default_seed


def record(kind: str, **fields) -> None:
    """Add to the session's transcript (nothing outside a notebook)."""
    if _current is not None and _current.transcript is not None:
        _current.transcript.add(kind, **fields)


def scale() -> str:
    """'full' (srelab run, a learner) or 'suite' (the test suite's smaller notebook run)."""
    value = os.environ.get("SRELAB_SCALE", "full")
    if value not in SCALES:
        raise ValueError(f"SRELAB_SCALE must be one of {SCALES}, got {value!r}")
    return value
