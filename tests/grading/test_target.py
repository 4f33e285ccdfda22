import json

import nbformat
import pytest

from labsupport import isolate
from labsupport.grading import target


def _nb(path, cells):
    nb = nbformat.v4.new_notebook()
    for src, tags in cells:
        nb.cells.append(nbformat.v4.new_code_cell(src, metadata={"tags": tags}))
    nbformat.write(nb, str(path))
    return path


def test_not_a_notebook_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.ipynb"
    bad.write_text("this is not json")
    with pytest.raises(target.TargetError, match="not a notebook"):
        target.read_cells(bad)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(target.TargetError, match="expected a .ipynb"):
        target.read_cells(tmp_path / "x.txt")
    with pytest.raises(target.TargetError, match="does not exist"):
        target.read_cells(tmp_path / "missing.ipynb")
    (tmp_path / "empty.ipynb").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(target.TargetError):
        target.read_cells(tmp_path / "empty.ipynb")


def test_exercise_cells_and_defining_cells_are_taken(tmp_path):
    path = _nb(
        tmp_path / "a.ipynb",
        [
            ("import gc\ndef after_warmup():\n    gc.freeze()", ["exercise"]),
            ("%timeit x = 1\ndef helper():\n    return 2", []),
            ("print('experiment that must not run')", []),
        ],
    )
    src = target.exercise_source(target.read_cells(path), ["helper"])
    assert "after_warmup" in src and "def helper" in src and "# %timeit" in src
    assert "must not run" not in src


def test_syntax_error_names_the_cell(tmp_path):
    path = _nb(tmp_path / "a.ipynb", [("x = 1", []), ("def f(:\n    pass", ["exercise"])])
    with pytest.raises(target.TargetError, match="syntax error in notebook cell 2"):
        target.exercise_source(target.read_cells(path))


def test_no_exercise_cells(tmp_path):
    path = _nb(tmp_path / "a.ipynb", [("x = 1", [])])
    with pytest.raises(target.TargetError, match="no exercise cells"):
        target.exercise_source(target.read_cells(path), ["f"])


def test_exercise_ref_loads_in_another_process_contained():
    ref = target.ExerciseRef("def double(x):\n    return 2 * x\n", "<cells>", "double")
    r = isolate.run_function("labsupport.isolate:call_learner", ref, 21, timeout_s=60)
    assert r.ok, r.error
    assert r.value == 42 and r.contained
    missing = target.ExerciseRef("def double(x):\n    return 2 * x\n", "<cells>", "nope")
    r = isolate.run_function("labsupport.isolate:call_learner", missing, 1, timeout_s=60)
    assert not r.ok and "does not define `nope`" in r.error


def test_defined_names():
    assert target.defined_names("import os\nX = 1\ndef f(): pass\nclass C: pass\n") == {
        "X",
        "f",
        "C",
    }
    assert target.defined_names("def f(:") == set()
