"""Where a learner works: copies of the learner notebooks, never `labs/` itself.

    >>> from labsupport import workspace
    >>> workspace.root("/tmp/ws").name
    'ws'
    >>> workspace.notebook_path(290, "/tmp/ws").name
    '290_p99_spikes.ipynb'

`srelab start NNN` copies `labs/NNN_*.ipynb` (optionally pointed at a variant with `--seed`)
into the workspace, `~/srelab-work` unless `--dir` or `SRELAB_WORKSPACE` says otherwise;
`srelab lab` opens JupyterLab there; `srelab check NNN` grades the workspace copy. An existing
copy is never overwritten without `force`: it holds the learner's work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from labsupport import labs

ENV_VAR = "SRELAB_WORKSPACE"


class WorkspaceError(Exception):
    """A workspace action that would lose work or has nothing to act on."""


def root(override: str | os.PathLike | None = None) -> Path:
    """The workspace folder: override, $SRELAB_WORKSPACE, or ~/srelab-work."""
    if override:
        return Path(override).expanduser()
    return Path(os.environ.get(ENV_VAR) or "~/srelab-work").expanduser()


def notebook_path(lab_key, where: str | os.PathLike | None = None) -> Path:
    return root(where) / f"{labs.get(lab_key).slug}.ipynb"


def start(
    lab_key, where: str | os.PathLike | None = None, *, seed: int | None = None, force=False
) -> Path:
    """Copy the learner notebook of lab `lab_key` into the workspace; its path there."""
    from labsupport.grading import release

    lab = labs.get(lab_key)
    if not lab.notebook_path.exists():
        raise WorkspaceError(f"lab {lab.number} has no learner notebook yet (see `srelab list`)")
    dest = notebook_path(lab, where)
    if dest.exists() and not force:
        raise WorkspaceError(
            f"{dest} already exists and holds your work: open it, or pass --force to start over"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    nb = json.loads(lab.notebook_path.read_text())
    if seed is not None:
        release.set_seed(nb, lab.number, seed)
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return dest


def seed_of(path: str | os.PathLike) -> int | None:
    """The variant a workspace notebook was started with (its metadata), if any."""
    try:
        meta = json.loads(Path(path).read_text()).get("metadata", {})
    except (OSError, ValueError):
        return None
    seed = (meta.get("srelab") or {}).get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def fill(where: str | os.PathLike | None = None) -> list[Path]:
    """Copy every ready lab's learner notebook that is not in the workspace yet."""
    made = []
    for lab in labs.done():
        if lab.notebook_path.exists() and not notebook_path(lab, where).exists():
            made.append(start(lab, where))
    return made
