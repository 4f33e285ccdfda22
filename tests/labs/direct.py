"""Call a lab's checks directly, in this pytest session, with any learner definitions.

    >>> from tests.labs import direct
    >>> direct.check_names(290)[:1]  # doctest: +SKIP
    ['test_diagnosis_matches_the_pause_log']

The cheat corpus and the variant tests grade other notebooks (a cheat, the solution at another
seed) with the same check functions as `tests/labs/test_NNN_*.py`, so the workloads those
checks cache per session are measured once for all of them.
"""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from labsupport import labs
from labsupport.grading import target


def module(lab_key):
    lab = labs.get(lab_key)
    return importlib.import_module(f"tests.labs.test_{lab.slug}")


def check_names(lab_key, kind: str | None = None) -> list[str]:
    """The lab's check functions, in file order; only those marked `kind` if given."""
    mod = module(lab_key)
    out = []
    for name, fn in vars(mod).items():
        if not name.startswith("test_") or not callable(fn):
            continue
        marks = {m.name for m in getattr(fn, "pytestmark", [])}
        if kind is None or kind in marks:
            out.append(name)
    return out


def exercises(lab_key, source_path=None, extra_cells=(), *, base: str = "solution"):
    """Learner definitions loaded in a submission process: a notebook's cells plus extras."""
    lab = labs.get(lab_key)
    path = source_path or (lab.solution_path if base == "solution" else lab.notebook_path)
    source = target.exercise_source(target.read_cells(path), target.exercise_names(lab))
    for i, cell in enumerate(extra_cells):
        source += f"\n# ---- notebook cell {900 + i} ----\n{cell}\n"
    ex = target.LearnerExercises(lab, source, path)
    ex.start()
    return ex


def run(lab_key, check_id: str, exercises, seed: int | None = None) -> str | None:
    """Run one check ("test_x" or "test_x[param]"); its failure message, None if it passed."""
    lab = labs.get(lab_key)
    m = re.fullmatch(r"(\w+)(?:\[(.+)\])?", check_id)
    fn = getattr(module(lab), m.group(1))
    params = inspect.signature(fn).parameters
    kwargs = {}
    if "lab" in params:
        kwargs["lab"] = exercises
    if "seed" in params:
        kwargs["seed"] = lab.default_seed if seed is None else seed
    if m.group(2) is not None:
        marks = [mk for mk in getattr(fn, "pytestmark", []) if mk.name == "parametrize"]
        kwargs[marks[0].args[0]] = m.group(2)
    try:
        fn(**kwargs)
    except pytest.skip.Exception:
        return None
    except (AssertionError, pytest.fail.Exception) as exc:
        return str(exc) or type(exc).__name__
    except Exception as exc:  # a check that crashes still fails; say so plainly
        return f"{type(exc).__name__}: {exc}"
    return None
