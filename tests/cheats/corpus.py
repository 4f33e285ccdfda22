"""The cheat corpus: wrong submissions a learner or a candidate would try, one list per lab.

    >>> from tests.cheats.corpus import Cheat
    >>> Cheat(290, "gc.disable()", "debrief bypass", ("...",), ("test_fix",)).lab
    290

Each lab has `tests/cheats/cheats_NNN_symptom.py` with `CHEATS = [Cheat(...), ...]`: at least
one of each kind in KINDS (grader tampering is proven for every lab by
`tests/grading/test_tampering.py`). A cheat is the lab's solution with some exercise cells
replaced (`base="solution"`, the default: only the cheated part is wrong) or the learner copy
with cells added (`base="learner"`). `tests/cheats/test_cheats.py` runs only the checks a cheat
targets, in this pytest session, so the workloads those checks share are measured once.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

KINDS = ("hard-coded", "package helper", "symptom hiding", "debrief bypass")


@dataclass(frozen=True)
class Cheat:
    lab: int
    name: str
    kind: str  # one of KINDS
    cells: tuple[str, ...]  # exercise cells to add; they redefine the names they define
    checks: tuple[str, ...]  # the checks it targets ("test_x" or "test_x[param]"): one must fail
    base: str = "solution"  # or "learner"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.base not in ("solution", "learner"):
            raise ValueError(f"{self.name}: base must be 'solution' or 'learner'")
        if not self.cells or not self.checks:
            raise ValueError(f"{self.name}: a cheat needs cells and the checks it targets")


def corpus(lab) -> list[Cheat]:
    """The lab's cheats ([] when it has no corpus file yet)."""
    name = f"tests.cheats.cheats_{lab.slug}"
    if not (Path(__file__).parent / f"cheats_{lab.slug}.py").exists():
        return []
    cheats = list(importlib.import_module(name).CHEATS)
    for c in cheats:
        if c.lab != lab.number:
            raise ValueError(f"{name}: {c.name} is for lab {c.lab}")
    return cheats
