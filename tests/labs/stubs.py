"""Tell an unwritten exercise from a written one by reading its source, without running it.

    >>> from tests.labs import stubs
    >>> src = "def f(x):\\n    'Doc.'\\n    raise NotImplementedError('Exercise f: ...')\\n"
    >>> stubs.is_stub(src, "f"), stubs.is_stub("def f(x):\\n    return x\\n", "f")
    (True, False)

A check fails an unsolved notebook before any workload by calling the learner's function on a
tiny input. Some exercises cannot run outside their workload (a step inside a process group),
and calling others in the submission process would import heavy libraries there (torch: its
native libraries then show as the learner's flags). For those, read the source: the last
definition of the name whose body, docstring aside, is only `raise NotImplementedError(...)`
is the stub that `srelab release` wrote.
"""

from __future__ import annotations

import ast


def is_stub(source: str, name: str) -> bool:
    """True when the last top-level-or-nested `def name` in `source` only raises
    NotImplementedError (False when there is none, or the source does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
    if not found:
        return False
    body = [
        n
        for n in found[-1].body
        if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
    ]
    return (
        len(body) == 1
        and isinstance(body[0], ast.Raise)
        and "NotImplementedError" in ast.unparse(body[0])
    )


def fail_if_stub(ref) -> None:
    """pytest.fail at once when the exercise `ref` (lab.ref(NAME)) is still the stub."""
    import pytest

    if is_stub(ref.source, ref.name):
        pytest.fail(f"{ref.name} is not written yet: write its body (see the docstring)",
                    pytrace=False)  # fmt: skip
