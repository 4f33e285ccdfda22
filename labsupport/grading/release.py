"""Generate the learner notebooks in labs/ from the single source in solutions/.

    >>> from labsupport.grading import release
    >>> print(release.strip_solutions('''def f(x):
    ...     \"\"\"Double x.\"\"\"
    ...     # BEGIN SOLUTION
    ...     return 2 * x
    ...     # END SOLUTION
    ... '''))
    def f(x):
        \"\"\"Double x.\"\"\"
        raise NotImplementedError("Exercise f: write your code here (see the docstring)")
    <BLANKLINE>

Solution regions sit inside function bodies, so the learner copy still loads and each stub
fails with a pointer to its exercise. Outputs are cleared and cell ids are stable, so
`srelab release --check` can tell a stale labs/ from a fresh one byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path

from labsupport import labs

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)\s*\(")


class ReleaseError(Exception):
    """A solution file that cannot be turned into a learner notebook."""


def _enclosing_function(lines: list[str], index: int, indent: int) -> str:
    for line in reversed(lines[:index]):
        m = _DEF.match(line)
        if m and len(m.group(1)) < indent:
            return m.group(2)
    return ""


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace every `# BEGIN SOLUTION` ... `# END SOLUTION` region with a failing stub."""
    lines = source.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        if not m:
            if END.match(lines[i]):
                raise ReleaseError(f"{where}: '# END SOLUTION' without a BEGIN")
            out.append(lines[i])
            i += 1
            continue
        indent = m.group(1)
        name = _enclosing_function(lines, i, len(indent))
        if not indent or not name:
            raise ReleaseError(f"{where}: a solution region must sit inside a function body")
        j = i + 1
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise ReleaseError(f"{where}: nested '# BEGIN SOLUTION'")
            j += 1
        if j == len(lines):
            raise ReleaseError(f"{where}: '# BEGIN SOLUTION' without an END")
        out.append(
            f'{indent}raise NotImplementedError("Exercise {name}: write your code here '
            f'(see the docstring)")'
        )
        i = j + 1
    text = "\n".join(out)
    try:
        compile(text, where, "exec")
    except SyntaxError as exc:
        raise ReleaseError(f"{where}: the learner copy does not compile: {exc}") from None
    return text


_SEED_LINE = re.compile(r"(?m)^SEED = \d+")


def with_seed(source: str, seed: int) -> str:
    """Cell or py:percent text with its `SEED = N` line set to `seed`."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    new, count = _SEED_LINE.subn(f"SEED = {seed}", source, 1)
    if count != 1:
        raise ValueError("no `SEED = N` line to set")
    return new


def set_seed(nb, lab_number: int, seed: int):
    """Point a notebook (nbformat node or dict) at variant `seed`: its SEED line and metadata."""
    for cell in nb["cells"]:
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if cell["cell_type"] == "code" and _SEED_LINE.search(src):
            cell["source"] = with_seed(src, seed)
            break
    else:
        raise ValueError("the notebook has no `SEED = N` line")
    nb["metadata"]["srelab"] = {"lab": lab_number, "seed": seed}
    return nb


def learner_notebook(solution: Path):
    """The learner notebook (nbformat node) for one solution file."""
    import jupytext
    import nbformat

    nb = jupytext.read(str(solution), fmt="py:percent")
    stem = solution.stem
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{stem.split('_')[0]}-{i:03d}"
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{solution.name} cell {i + 1}")
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    number = int(stem.split("_")[0])
    if any(_SEED_LINE.search(c.source) for c in nb.cells if c.cell_type == "code"):
        from labsupport import labs as _labs

        nb.metadata["srelab"] = {"lab": number, "seed": _labs.get(number).default_seed}
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nb


def render(solution: Path) -> str:
    import nbformat

    return nbformat.writes(learner_notebook(solution)) + "\n"


MANIFEST = ".generated.json"  # labs/: file name -> sha256 of what release last wrote


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def edited(lab_dir: Path) -> list[Path]:
    """Notebooks in labs/ that differ from what release last generated (someone's edits)."""
    import json

    try:
        manifest = json.loads((lab_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = {}
    return [
        p
        for p in sorted(lab_dir.glob("*.ipynb"))
        if p.name in manifest and _digest(p.read_text()) != manifest[p.name]
    ]


def release(check: bool = False, root: Path | None = None, force: bool = False) -> list[Path]:
    """Write labs/*.ipynb for every solution; with check, write nothing and return stale ones.

    Stale also means a notebook in labs/ whose solution is gone. A notebook someone edited
    (it differs from what release last wrote) is never overwritten without `force`:
    ReleaseError names it (learners work in a workspace copy: `srelab start`).
    """
    import json

    root = root or labs.REPO_ROOT
    sol_dir, lab_dir = root / "solutions", root / "labs"
    lab_dir.mkdir(exist_ok=True)
    stale: list[Path] = []
    expected = set()
    rendered = {}
    for solution in sorted(sol_dir.glob("[0-9][0-9][0-9]_*.py")):
        target = lab_dir / f"{solution.stem}.ipynb"
        expected.add(target.name)
        rendered[target] = render(solution)
    manifest_path = lab_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    for target, text in rendered.items():
        if target.exists() and target.read_text() == text:
            if manifest.get(target.name) != _digest(text):
                stale.append(manifest_path)
            continue
        stale.append(target)
    orphans = [p for p in sorted(lab_dir.glob("*.ipynb")) if p.name not in expected]
    stale += orphans
    if check:
        return sorted(set(stale))
    mine = edited(lab_dir)
    touched = [p for p in mine if p in stale]
    if touched and not force:
        names = ", ".join(str(p.relative_to(root)) for p in touched)
        raise ReleaseError(
            f"{names} was edited since release generated it; your edits are kept. Work in a "
            "workspace copy (`srelab start NNN`); `srelab release --force` overwrites it"
        )
    for target, text in rendered.items():
        if target in stale:
            target.write_text(text)
        manifest[target.name] = _digest(text)
    for orphan in orphans:
        orphan.unlink()
        manifest.pop(orphan.name, None)
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
    return [p for p in stale if p != manifest_path]
