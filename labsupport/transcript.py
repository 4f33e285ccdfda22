"""A candidate's transcript: every cell run, every check(), every hint(), with their times.

    >>> from labsupport import transcript
    >>> t = transcript.Transcript(None, lab=290, seed=7)
    >>> _ = t.add("cell", code="x = 1", ok=True)
    >>> _ = t.add("check", verdicts={"diagnosis": "passed"}, kinds={"diagnosis": "diagnosis"})
    >>> summary = transcript.summarize(t.entries)
    >>> summary["cells_run"], summary["check_attempts"], summary["first_pass_s"]["diagnosis"] >= 0
    (1, 1, True)

In a notebook `session.begin(...)` starts one: an IPython `post_run_cell` hook appends each
executed cell (time, code, whether it raised) as a JSON line to `<notebook>.transcript.jsonl`
beside the notebook, and `check()` / `hint()` add theirs. Each `check()` also embeds the
transcript so far in its output (mimetype `application/vnd.srelab.transcript+json`), so it
travels inside the saved notebook too. `srelab check --notebook X` summarises whichever it
finds. The transcript informs; the re-run on the grader's machine decides.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

MIMETYPE = "application/vnd.srelab.transcript+json"
MAX_CODE = 4000


def sidecar(notebook: str | os.PathLike) -> Path:
    """Where the transcript of `notebook` lives: beside it."""
    path = Path(notebook)
    return path.with_name(path.name + ".transcript.jsonl")


def notebook_path() -> Path | None:
    """The notebook this kernel runs, where Jupyter says so (JPY_SESSION_NAME), else None."""
    name = os.environ.get("JPY_SESSION_NAME", "")
    if not name or not name.endswith(".ipynb"):
        return None
    path = Path(name)
    if path.is_absolute() and path.exists():
        return path
    local = Path.cwd() / path.name  # jupyter_server may give it relative to its root
    return local if local.exists() else (Path.cwd() / path)


class Transcript:
    """Entries in memory, appended to a JSON-lines file when it has a path."""

    def __init__(self, path: Path | None, *, lab: int, seed: int):
        self.path = Path(path) if path else None
        self.entries: list[dict] = []
        self.add("start", lab=lab, seed=seed)

    def add(self, kind: str, **fields) -> dict:
        entry = {"t": round(time.time(), 3), "kind": kind, **fields}
        if "code" in entry:
            entry["code"] = str(entry["code"])[:MAX_CODE]
        self.entries.append(entry)
        if self.path is not None:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry, default=str) + "\n")
            except OSError:
                pass  # a read-only folder: the copy embedded by check() remains
        return entry

    def on_cell(self, result) -> None:
        """IPython's post_run_cell callback."""
        info = getattr(result, "info", None)
        code = getattr(info, "raw_cell", "") if info is not None else ""
        error = result.error_in_exec or result.error_before_exec
        self.add(
            "cell",
            code=code,
            ok=bool(result.success),
            error=type(error).__name__ if error is not None else None,
        )

    def display(self):
        """The transcript so far as a display object (saved with the notebook's outputs)."""
        from IPython.display import display

        display({MIMETYPE: {"entries": self.entries}, "text/plain": ""}, raw=True)


def load(notebook: str | os.PathLike) -> list[dict]:
    """The transcript of a notebook: its sidecar file, else the newest copy embedded in it."""
    side = sidecar(notebook)
    if side.exists():
        entries = []
        for line in side.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        if entries:
            return entries
    try:
        nb = json.loads(Path(notebook).read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return []
    best: list[dict] = []
    for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
        for out in cell.get("outputs", []) or []:
            data = (out.get("data") or {}).get(MIMETYPE)
            if isinstance(data, dict) and len(data.get("entries", [])) > len(best):
                best = list(data["entries"])
    return best


def summarize(entries: list[dict]) -> dict:
    """Cells run, errors, check attempts, hints, and seconds from start to the first passing
    diagnosis and fix checks (None: never passed in this transcript)."""
    if not entries:
        return {"present": False}
    start = entries[0]["t"]
    first: dict[str, float | None] = {"diagnosis": None, "fix": None}
    cells = [e for e in entries if e["kind"] == "cell"]
    checks = [e for e in entries if e["kind"] == "check"]
    for e in checks:
        kinds = e.get("kinds") or {}
        verdicts = e.get("verdicts") or {}
        for kind in first:
            mine = [c for c, k in kinds.items() if k == kind]
            if first[kind] is None and mine and all(verdicts.get(c) == "passed" for c in mine):
                first[kind] = round(e["t"] - start, 1)
    return {
        "present": True,
        "lab": entries[0].get("lab"),
        "seed": entries[0].get("seed"),
        "duration_s": round(entries[-1]["t"] - start, 1),
        "cells_run": len(cells),
        "cells_failed": sum(not c.get("ok", True) for c in cells),
        "check_attempts": len(checks),
        "hints": [(e.get("exercise"), e.get("level")) for e in entries if e["kind"] == "hint"],
        "first_pass_s": first,
        "note": "informative only: the re-run on the grader's machine decides",
    }
