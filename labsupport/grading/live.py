"""`check("NNN")` inside a notebook: grade the live kernel's definitions with the real checks.

    >>> from labsupport import check
    >>> check("290")          # doctest: +SKIP
    check                          result  time    hint
    diagnosis_matches_pauses       PASS    8.1 s
    ...
    All 4 visible checks passed.

It takes, from the kernel's execution history, the latest cell that defines each graded name
(the exercise cells hold their own imports), writes them to a temporary notebook and runs the
same pytest checks as `srelab check` in a fresh process: same verdicts, and the kernel survives
whatever the checks run.
"""

from __future__ import annotations

import os
from pathlib import Path

from labsupport import labs
from labsupport.grading import report, runner
from labsupport.grading.target import defined_names, exercise_names


class CheckResult(dict):
    """The report dict: an HTML table in a notebook, a text table in a terminal."""

    @property
    def passed(self) -> bool:
        return bool(self.get("passed"))

    def table(self) -> str:
        return report.render_table(self["checks"]) + "\n" + report.verdict_line(self["checks"])

    def _repr_html_(self) -> str:
        if self.get("skipped"):
            return f"<p>check({self['lab']}) skipped</p>"
        return report.render_html(self["checks"])

    def __repr__(self) -> str:
        if self.get("skipped"):
            return f"<check {self['lab']}: skipped>"
        counts = report.summary(self["checks"])
        return f"<check {self['lab']}: {counts['passed']} passed, {counts['failed']} failed>"


def history_cells(history: list[str], names: list[str]) -> list[str]:
    """The latest executed cell defining each name, in execution order, without duplicates."""
    chosen: dict[int, str] = {}
    for name in names:
        for index in range(len(history) - 1, -1, -1):
            if name in defined_names(history[index]):
                chosen[index] = history[index]
                break
    return [chosen[i] for i in sorted(chosen)]


def _write_notebook(cells: list[str], path) -> None:
    """A minimal nbformat-4 notebook of exercise cells (plain JSON: nbformat is slow to import)."""
    import json

    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "id": f"live-{i}",
                "metadata": {"tags": ["exercise"]},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for i, source in enumerate(cells)
        ],
    }
    Path(path).write_text(json.dumps(nb))


def _in_notebook() -> bool:
    try:
        return get_ipython().__class__.__name__ == "ZMQInteractiveShell"  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return False


def check(
    lab_key,
    *,
    seed: int | None = None,
    timeout_s: float = runner.DEFAULT_TIMEOUT_S,
    history=None,
    quiet: bool = False,
) -> CheckResult:
    """Grade lab `lab_key` from this kernel's definitions; a table (HTML in a notebook).

    seed: the variant to grade against (default: this notebook's `session.begin` seed).
    """
    from labsupport import progress, session, transcript

    lab = labs.get(lab_key)
    seed = session.seed_for(lab) if seed is None else seed
    if os.environ.get("SRELAB_SKIP_LIVE_CHECKS") and history is None:
        print(
            f"check({lab.number}) skipped: `srelab run` executes the solution without "
            "re-grading it (use `srelab run --with-checks` to grade here too)"
        )
        return CheckResult(lab=lab.slug, passed=None, checks=[], skipped=True)
    if history is None:
        try:
            ip = get_ipython()  # type: ignore[name-defined]  # noqa: F821
        except NameError:
            raise RuntimeError(
                "check() grades the definitions of a running notebook; "
                f"from a shell, run `srelab check {lab.number} --notebook PATH`"
            ) from None
        history = list(ip.user_ns.get("In", []))
    names = exercise_names(lab)
    cells = history_cells(history, names)
    missing = [n for n in names if not any(n in defined_names(c) for c in cells)]
    from labsupport import isolate

    notebook = transcript.notebook_path()
    with isolate.temp_dir() as tmp:
        path = tmp / f"live_{lab.number}.ipynb"
        _write_notebook(cells or ["# no exercise cells were run yet"], path)
        if not quiet:
            print(
                f"Grading lab {lab.slug}, variant {seed} ({len(names)} exercise(s)); this runs "
                "the workloads again, in fresh processes ..."
            )
            if missing:
                print(
                    f"Not defined in this kernel yet: {', '.join(missing)} "
                    "(run the exercise cells first)"
                )
        result = CheckResult(
            runner.grade(
                lab.number,
                path,
                timeout_s=timeout_s,
                seed=seed,
                echo=None if quiet else progress.echo("checks", show_other_lines=False),
                attempt_key=str(notebook) if notebook else f"live-kernel-{os.getpid()}",
            )
        )
    result["target"] = "live kernel"
    session.record(
        "check",
        verdicts={c["check"]: c["outcome"] for c in result["checks"]},
        kinds={c["check"]: c.get("kind") for c in result["checks"] if c.get("kind")},
        attempt=result.get("attempt"),
    )
    if quiet:
        return result
    if _in_notebook():
        current = session.current()
        if current is not None and current.transcript is not None:
            current.transcript.display()
        return result  # the notebook shows it as an HTML table
    print(result.table())
    return result
