"""Turn a grading target (a notebook or a jupytext .py) into the learner's exercise module.

    >>> from labsupport.grading import target
    >>> from labsupport import labs
    >>> sorted(target.exercise_names(labs.get(290)))
    ['after_warmup', 'share_of_slow_requests_in_gc']

Only exercise cells are loaded (tagged `exercise`, or any cell that defines a name the lab
grades), never the whole notebook: grading does not re-run the lab's experiments. Every way a
target can be wrong (not a notebook, a syntax error, a missing function, a loop at top level)
ends in a TargetError or a failed check with a message a learner can act on.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from labsupport import isolate

EXERCISE_TAG = "exercise"
LOAD_TIMEOUT_S = 30


class TargetError(Exception):
    """The target cannot be graded; the message says why and what to do."""


@dataclass(frozen=True)
class Cell:
    index: int
    cell_type: str
    source: str
    tags: tuple[str, ...] = ()


def read_cells(path: str | Path) -> list[Cell]:
    """Cells of an .ipynb or a jupytext .py file."""
    path = Path(path)
    if not path.exists():
        raise TargetError(f"{path} does not exist")
    if path.is_dir():
        raise TargetError(f"{path} is a directory, not a notebook")
    if path.suffix == ".ipynb":
        import nbformat

        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception as exc:  # nbformat raises several kinds for "not JSON"/"not nbformat"
            raise TargetError(f"{path} is not a notebook: {exc}") from exc
        if "cells" not in nb:
            raise TargetError(f"{path} is not a notebook: it has no cells")
    elif path.suffix == ".py":
        import jupytext

        try:
            nb = jupytext.read(str(path), fmt="py:percent")
        except Exception as exc:
            raise TargetError(f"{path} could not be read as a jupytext notebook: {exc}") from exc
    else:
        raise TargetError(f"{path} is not a notebook: expected a .ipynb or a jupytext .py file")
    cells = []
    for i, c in enumerate(nb.cells):
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


def write_module(source: str, directory: Path, lab_number: int) -> Path:
    path = Path(directory) / f"srelab_exercises_{lab_number}.py"
    path.write_text(source)
    return path


def validate_module(path: Path, timeout_s: float = LOAD_TIMEOUT_S) -> None:
    """Import the module in a fresh process first: a top-level loop or crash can't hang us."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('srelab_exercises', {str(path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
    )
    r = isolate.run_python(code, timeout_s=timeout_s)
    if r.timed_out:
        raise TargetError(
            f"loading your exercise cells did not finish within {timeout_s:g} s: exercise cells "
            "must only define functions and constants (is there a loop or a long computation "
            "at the top level of an exercise cell?)"
        )
    if not r.ok:
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        raise TargetError(
            "your exercise cells fail when loaded: " + (lines[-1] if lines else str(r.error))
        )


_MODULES: dict[str, object] = {}


def load_module(path: str | Path):
    """Import the exercise module in this process (cached per path)."""
    key = str(Path(path).resolve())
    if key not in _MODULES:
        name = f"srelab_exercises_{len(_MODULES)}"
        spec = importlib.util.spec_from_file_location(name, key)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        spec.loader.exec_module(module)
        _MODULES[key] = module
    return _MODULES[key]


@dataclass(frozen=True)
class ExerciseRef:
    """A picklable pointer to a learner definition, for workloads in another process.

    >>> # ref = lab.ref("after_warmup"); isolate.run_function("pkg.mod:run", fix=ref, ...)
    >>> # in the child: fn = ref.load()
    """

    module_path: str
    name: str

    def load(self):
        module = load_module(self.module_path)
        if not hasattr(module, self.name):
            raise AttributeError(f"your notebook does not define `{self.name}`")
        return getattr(module, self.name)


class LearnerExercises:
    """The learner's definitions, as the `lab` fixture hands them to the checks."""

    def __init__(self, lab, module_path: Path, target: Path):
        self.lab = lab
        self.number = lab.number
        self.module_path = Path(module_path)
        self.target = Path(target)

    @property
    def module(self):
        return load_module(self.module_path)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        module = load_module(self.module_path)
        if not hasattr(module, name):
            import pytest

            pytest.fail(
                f"your notebook does not define `{name}`: write it in the exercise cell "
                f"of lab {self.number} (keep the name and signature of the stub)",
                pytrace=False,
            )
        return getattr(module, name)

    def ref(self, name: str) -> ExerciseRef:
        getattr(self, name)  # fail here, clearly, if it is missing
        return ExerciseRef(str(self.module_path), name)


def build(lab, target: Path, directory: Path) -> LearnerExercises:
    """Read `target`, extract its exercise cells, check they load, and wrap them."""
    cells = read_cells(target)
    source = exercise_source(cells, exercise_names(lab))
    path = write_module(source, directory, lab.number)
    validate_module(path)
    return LearnerExercises(lab, path, target)
