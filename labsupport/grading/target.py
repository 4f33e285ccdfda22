"""Turn a grading target (a notebook or a jupytext .py) into the learner's exercise module.

    >>> from labsupport.grading import target
    >>> from labsupport import labs
    >>> sorted(target.exercise_names(labs.get(290)))
    ['after_warmup', 'explain_slow_requests']

Only exercise cells are loaded (tagged `exercise`, or any cell that defines a name the lab
grades), never the whole notebook: grading does not re-run the lab's experiments. They are
loaded in a submission process (`grading.submission`), never in the grader's. Every way a
target can be wrong (not a notebook, a syntax error, a missing function, a loop at top level)
ends in a TargetError or a failed check with a message a learner can act on.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

EXERCISE_TAG = "exercise"


class TargetError(Exception):
    """The target cannot be graded; the message says why and what to do."""


@dataclass(frozen=True)
class Cell:
    index: int
    cell_type: str
    source: str
    tags: tuple[str, ...] = ()


def _read_ipynb(path: Path) -> dict:
    """The notebook's JSON (nbformat 4), read directly: importing nbformat costs ~2 s."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as exc:
        raise TargetError(f"{path} is not a notebook: it is not JSON ({exc})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise TargetError(f"{path} is not a notebook: it has no cells")
    if nb.get("nbformat", 4) < 4:
        raise TargetError(f"{path} is an nbformat {nb.get('nbformat')} notebook: save it as v4")
    for cell in nb["cells"]:
        if not isinstance(cell, dict):
            raise TargetError(f"{path} is not a notebook: a cell is not an object")
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(str(x) for x in cell["source"])
    return nb


_HEADER = re.compile(r"^# %%(?P<rest>.*)$")


def _read_percent(path: Path) -> list[dict]:
    """Cells of a jupytext py:percent file (what solutions/ holds), without importing jupytext.

    Markdown cells keep their text without the leading "# "; only code cells and tags matter
    for grading.
    """
    cells: list[dict] = []
    current = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _HEADER.match(line)
        if m:
            rest = m.group("rest")
            kind = "markdown" if "[markdown]" in rest else "code"
            tags = re.search(r"tags=(\[[^\]]*\])", rest)
            try:
                tag_list = json.loads(tags.group(1)) if tags else []
            except ValueError:
                raise TargetError(f"{path}: unreadable cell header {line!r}") from None
            current = {"cell_type": kind, "metadata": {"tags": tag_list}, "lines": []}
            cells.append(current)
        elif current is not None:
            if current["cell_type"] == "markdown":
                line = line[2:] if line.startswith("# ") else line.lstrip("#")
            current["lines"].append(line)
    for cell in cells:
        cell["source"] = "\n".join(cell.pop("lines")).strip("\n")
    return cells


def read_cells(path: str | Path) -> list[Cell]:
    """Cells of an .ipynb or a jupytext .py file."""
    path = Path(path)
    if not path.exists():
        raise TargetError(f"{path} does not exist")
    if path.is_dir():
        raise TargetError(f"{path} is a directory, not a notebook")
    if path.suffix == ".ipynb":
        nb = _read_ipynb(path)
    elif path.suffix == ".py":
        nb = {"cells": _read_percent(path)}
    else:
        raise TargetError(f"{path} is not a notebook: expected a .ipynb or a jupytext .py file")
    cells = []
    for i, c in enumerate(nb["cells"] if isinstance(nb, dict) else nb.cells):
        tags = tuple(c.get("metadata", {}).get("tags", []) or ())
        cells.append(Cell(i, c.get("cell_type", "code"), c.get("source", ""), tags))
    return cells


def _neutralise_magics(source: str) -> str:
    """Comment out IPython magics and shell escapes so the cell is plain Python."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "# " + stripped
        lines.append(line)
    return "\n".join(lines)


def defined_names(source: str) -> set[str]:
    """Top-level names a cell defines (functions, classes, assignments). Empty on bad syntax."""
    try:
        tree = ast.parse(_neutralise_magics(source))
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    names.add(t.id)
    return names


def exercise_names(lab) -> list[str]:
    """The public names the lab's solution defines in its exercise cells (what is graded)."""
    if not lab.solution_path.exists():
        return []
    cells = read_cells(lab.solution_path)
    names: list[str] = []
    for cell in cells:
        if cell.cell_type == "code" and EXERCISE_TAG in cell.tags:
            names.extend(sorted(n for n in defined_names(cell.source) if not n.startswith("_")))
    return names


def exercise_source(cells: list[Cell], names: list[str] | None = None) -> str:
    """The module text: every exercise cell, plus untagged cells defining a graded name."""
    wanted = set(names or ())
    chosen = []
    for cell in cells:
        if cell.cell_type != "code":
            continue
        if EXERCISE_TAG in cell.tags or defined_names(cell.source) & wanted:
            chosen.append(cell)
    if not chosen:
        hint = f" (expected definitions of {', '.join(sorted(wanted))})" if wanted else ""
        raise TargetError(
            "no exercise cells found: keep the cells tagged 'exercise' from the lab notebook" + hint
        )
    parts = []
    for cell in chosen:
        body = _neutralise_magics(cell.source)
        try:
            compile(body, f"<cell {cell.index + 1}>", "exec")
        except SyntaxError as exc:
            raise TargetError(
                f"syntax error in notebook cell {cell.index + 1}, line {exc.lineno}: {exc.msg}"
                f"\n    {(exc.text or '').strip()}"
            ) from None
        parts.append(f"# ---- notebook cell {cell.index + 1} ----\n{body}\n")
    return "\n".join(parts)


def module_label(lab_number: int) -> str:
    """The file name learner code is compiled under (tracebacks and flags map it to cells)."""
    return f"<your exercise cells, lab {lab_number}>"


_MODULES: dict[str, object] = {}


def load_source(source: str, label: str):
    """Exec learner source as a module in this process (once per source), watched by flags."""
    import hashlib
    import types

    key = hashlib.sha256(source.encode()).hexdigest()
    if key not in _MODULES:
        from labsupport.grading import flags

        flags.install(label, source)
        name = f"srelab_exercises_{key[:12]}"
        module = types.ModuleType(name)
        module.__file__ = label
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        exec(compile(source, label, "exec"), module.__dict__)
        _MODULES[key] = module
    return _MODULES[key]


@dataclass(frozen=True)
class ExerciseRef:
    """A learner definition sent to a workload in another process (which runs contained).

    >>> # ref = lab.ref("after_warmup"); isolate.run_function("pkg.mod:run", fix=ref, ...)
    >>> # in the child: fn = ref.load()
    """

    __srelab_learner_code__ = True  # isolate and the launchers contain whatever loads it

    source: str
    label: str
    name: str

    def load(self):
        module = load_source(self.source, self.label)
        if not hasattr(module, self.name):
            raise AttributeError(f"your notebook does not define `{self.name}`")
        return getattr(module, self.name)


class ExerciseProxy:
    """`lab.NAME`: calls go to the submission process; the value comes back as data."""

    def __init__(self, exercises: LearnerExercises, name: str):
        self._exercises, self.__name__ = exercises, name

    def __call__(self, *args, **kwargs):
        return self._exercises.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<learner function {self.__name__}>"


class LearnerExercises:
    """The learner's definitions, as the `lab` fixture hands them to the checks.

    Nothing of the learner's runs in this process: `lab.NAME(...)` is a proxy to the
    submission process, `lab.ref(NAME)` a reference a workload loads in its own.
    """

    deadline: float | None = None  # set per check by the plugin: calls must end before it

    def __init__(self, lab, source: str, target: Path):
        from labsupport.grading.submission import Submission

        self.lab = lab
        self.number = lab.number
        self.source = source
        self.label = module_label(lab.number)
        self.target = Path(target)
        self.submission = Submission(source, self.label)
        from labsupport.grading import hygiene

        self.submission.on_start = hygiene.exempt  # it lives for the session, on purpose
        self.submission.on_stop = hygiene.unexempt
        self.names: list[str] = []

    def start(self) -> None:
        from labsupport.grading.submission import SubmissionError

        try:
            self.names = self.submission.start()
        except SubmissionError as exc:
            self.submission.close()
            raise TargetError(str(exc)) from None

    def close(self) -> None:
        self.submission.close()

    def _missing(self, name: str):
        import pytest

        pytest.fail(
            f"your notebook does not define `{name}`: write it in the exercise cell "
            f"of lab {self.number} (keep the name and signature of the stub)",
            pytrace=False,
        )

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("submission", "names", "source", "label"):
            raise AttributeError(name)
        if name not in self.names:
            self._missing(name)
        return ExerciseProxy(self, name)

    def call(self, name: str, args: tuple, kwargs: dict):
        import time

        import pytest

        from labsupport.grading.submission import (
            DEFAULT_CALL_TIMEOUT_S,
            MissingName,
            SubmissionError,
        )

        limit = DEFAULT_CALL_TIMEOUT_S
        if LearnerExercises.deadline is not None:
            limit = max(1.0, min(limit, LearnerExercises.deadline - time.monotonic()))
        try:
            return self.submission.call(name, args, kwargs, timeout_s=limit)
        except SubmissionError as exc:
            pytest.fail(str(exc), pytrace=False)
        except MissingName:
            self._missing(name)

    def ref(self, name: str) -> ExerciseRef:
        if name not in self.names:
            self._missing(name)  # fail here, clearly, if it is missing
        return ExerciseRef(self.source, self.label, name)


def build(lab, target: Path) -> LearnerExercises:
    """Read `target`, extract its exercise cells, load them in a submission process."""
    cells = read_cells(target)
    source = exercise_source(cells, exercise_names(lab))
    exercises = LearnerExercises(lab, source, target)
    exercises.start()
    return exercises
