"""Execute a lab notebook headlessly and collect its headline figures (`srelab run`).

    >>> from labsupport import execute
    >>> result = execute.run_lab("290", progress=print)   # doctest: +SKIP
    >>> result["headlines"][0]["ratio"] >= 3               # doctest: +SKIP
    True

The solution notebook runs in a fresh Jupyter kernel with the repository as working
directory; each cell has a timeout, and a failing cell stops the run with its error shown.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from labsupport import device, headline, isolate, labs

CELL_TIMEOUT_S = 900
SKIP_CHECKS_ENV = "SRELAB_SKIP_LIVE_CHECKS"  # check() cells then say "skipped", grade nothing


class NotebookFailed(RuntimeError):
    """A cell raised or timed out; the message names the cell and the error."""


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:70]
    return ""


def execute_notebook(
    path: Path,
    *,
    env: dict | None = None,
    cell_timeout_s: float = CELL_TIMEOUT_S,
    progress=None,
    save_to: Path | None = None,
):
    """Run every cell of `path` (.ipynb or jupytext .py) in a fresh kernel; return the notebook."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = jupytext.read(str(path)) if path.suffix == ".py" else nbformat.read(str(path), 4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    total = len(code_cells)
    counter = {"n": 0}

    def on_cell_start(cell, cell_index, **_):
        if cell.cell_type == "code" and progress is not None:
            counter["n"] += 1
            progress(f"[{counter['n']}/{total}] {_first_line(cell.source)}")

    old_env = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})  # the kernel inherits this process's environment
    try:
        client = NotebookClient(
            nb,
            timeout=cell_timeout_s,
            kernel_name="python3",
            resources={"metadata": {"path": str(labs.REPO_ROOT)}},
            on_cell_start=on_cell_start,
        )
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError) as exc:
            text = str(exc)
            raise NotebookFailed(f"{path.name}: a cell failed:\n{text[-3000:]}") from None
        finally:
            if save_to is not None:
                nbformat.write(nb, str(save_to))
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def run_lab(
    lab_key,
    *,
    progress=None,
    save_to: Path | None = None,
    cell_timeout_s: float = CELL_TIMEOUT_S,
    with_checks: bool = False,
    scale: str = "full",
    seed: int | None = None,
) -> dict:
    """Execute lab `lab_key`'s solution notebook; return its headlines and the environment.

    The notebook's check() cells grade the solution again, which the test suite already does;
    they are skipped unless with_checks (then they grade in the live kernel, as for a learner).
    scale: "full", or "suite" for the test suite's smaller run (`session.scale()`).
    seed: run this variant instead of the notebook's own `SEED`.
    """
    from labsupport import session
    from labsupport.grading import release

    lab = labs.get(lab_key)
    if not lab.solution_path.exists():
        raise FileNotFoundError(f"lab {lab.slug} is not written yet (see `srelab list`)")
    if scale not in session.SCALES:
        raise ValueError(f"scale must be one of {session.SCALES}, not {scale!r}")
    started = time.perf_counter()
    with isolate.temp_dir() as tmp:
        out = tmp / "headline.json"
        source = lab.solution_path
        if seed is not None:
            source = tmp / lab.solution_path.name
            source.write_text(release.with_seed(lab.solution_path.read_text(), seed))
        execute_notebook(
            source,
            env={
                headline.ENV_VAR: str(out),
                SKIP_CHECKS_ENV: "" if with_checks else "1",
                "SRELAB_SCALE": scale,
                "SRELAB_PROGRESS": os.environ.get("SRELAB_PROGRESS", "0" if progress else "1"),
            },
            progress=progress,
            save_to=save_to,
            cell_timeout_s=cell_timeout_s,
        )
        headlines = json.loads(out.read_text()) if out.exists() else []
    if not headlines:
        raise NotebookFailed(f"{lab.slug} ran but recorded no headline (headline.record)")
    return {
        "lab": lab.slug,
        "title": lab.title,
        "headline_metric": lab.headline,
        "headlines": headlines,
        "environment": device.environment(),
        "scale": scale,
        "duration_s": round(time.perf_counter() - started, 1),
    }
