"""`srelab interview NNN --seed S --out DIR`: a candidate bundle and an interviewer sheet.

    >>> from labsupport import interview
    >>> paths = interview.write(288, seed=7, out="/tmp/interview-288")   # doctest: +SKIP
    >>> sorted(paths)                                                     # doctest: +SKIP
    ['brief', 'notebook', 'sheet (HTML)', 'sheet (Markdown)']

The candidate gets `candidate/`: the variant's learner notebook (its `SEED` and metadata set,
every `reveal` cell, the Debrief and anything tagged `model-answer` removed) and `BRIEF.md`
(the incident, what to deliver, the time box, how to check). With `wheel=True` also the
package's wheel, which holds `labsupport` only: no solutions, no checks, no answers.
The interviewer gets `interviewer/sheet.md` and `sheet.html`: the variant's expected evidence
and answers, a rubric, the model answer and follow-up questions, every hint, what the report's
flags mean, and how to grade. The sheet's material lives in `tests/labs/truth/` (never in the
package), so it is written from a checkout of the repository.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

from labsupport import labs

STRIP_TAGS = ("reveal", "model-answer")
DEBRIEF = re.compile(r"^#+\s*6\.\s*Debrief", re.M)


class InterviewError(Exception):
    """The bundle cannot be written; the message says why."""


def _source(cell) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def candidate_notebook(lab, seed: int) -> dict:
    """The learner notebook at variant `seed`, without reveal cells, Debrief or model answers."""
    from labsupport.grading import release

    nb = json.loads(lab.notebook_path.read_text())
    release.set_seed(nb, lab.number, seed)
    kept = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown" and DEBRIEF.search(_source(cell)):
            break  # the Debrief and everything after it: the model answer and follow-ups
        if set(cell.get("metadata", {}).get("tags", [])) & set(STRIP_TAGS):
            continue
        kept.append(cell)
    nb["cells"] = kept
    nb["metadata"]["srelab"]["interview"] = True
    return nb


def _section(lab, heading: str) -> str:
    """The markdown of one numbered section of the solution (e.g. '1. Incident')."""
    from labsupport.grading.target import read_cells

    out, inside = [], False
    for cell in read_cells(lab.solution_path):
        if cell.cell_type != "markdown":
            continue
        if re.search(rf"^#+\s*{re.escape(heading)}", cell.source, re.M):
            inside = True
        elif inside and re.search(r"^##\s*\d\.", cell.source, re.M):
            break
        if inside:
            out.append(cell.source)
    return "\n\n".join(out).strip()


def truth(lab):
    root = str(labs.REPO_ROOT)
    if (labs.REPO_ROOT / "tests" / "labs" / "truth").is_dir() and root not in sys.path:
        sys.path.insert(0, root)  # a checkout: the sheet's material is in tests/labs/truth
    try:
        return importlib.import_module(f"tests.labs.truth.{lab.symptom}")
    except ModuleNotFoundError:
        raise InterviewError(
            f"the interviewer sheet needs tests/labs/truth/{lab.symptom}.py: run `srelab "
            "interview` from a checkout of the repository (the installed package has no answers)"
        ) from None


def brief(lab, seed: int) -> str:
    from labsupport.grading.target import exercise_names

    minutes = lab.learner_minutes or 45
    exercises = "\n".join(f"- `{name}`" for name in exercise_names(lab))
    return f"""# Lab {lab.number}: {lab.title}

Variant {seed}. Time box: **{minutes} minutes** (your interviewer may allow more).

## The incident

{_section(lab, "1. Incident")}

## What to deliver

Work in `{lab.slug}.ipynb`: run it top to bottom, find the cause from the evidence it
produces, and write the exercises it asks for:

{exercises}

Explain your reasoning as you go (markdown cells are fine): the interviewer reads how you got
there, not only the result.

## How to check your work

`check("{lab.number}")` in the notebook grades your current definitions against this variant
by re-running the failing system (it takes a minute or two; it prints a table). You may run it
as often as you like; each run is recorded. `hint("{lab.number}", 1, "NAME")` shows a hint
(also recorded). When you are done, save the notebook and hand back the notebook and the
`{lab.slug}.ipynb.transcript.jsonl` file beside it.

## Setup

A machine with the package installed (`pip install llm_sre_labs-*.whl` if your interviewer
gave you the wheel), then `jupyter lab {lab.slug}.ipynb`. A GPU is optional:
{"the lab runs a labelled stand-in without one." if lab.gpu == "real" else "it runs on a CPU."}
"""


def sheet(lab, seed: int) -> str:
    from labsupport import hints
    from labsupport.grading import flags

    t = truth(lab)
    expected = t.expected(seed)
    rows = "\n".join(f"| {k} | {v} |" for k, v in expected.items())
    rubric = []
    for band, levels in t.RUBRIC.items():
        rubric.append(f"### {band.capitalize()}\n")
        rubric += [f"- **{level}**: {text}" for level, text in levels.items()]
        rubric.append("")
    hint_lines = []
    for name, ladder in hints.table(lab).items():
        hint_lines.append(
            f"- `{name}`: " + " / ".join(f"({i}) {h}" for i, h in enumerate(ladder, 1))
        )
    flag_lines = "\n".join(f"- `{k}`: {v}" for k, v in flags.KINDS.items())
    minutes = lab.learner_minutes or 45
    return f"""# Interviewer sheet: lab {lab.number}, {lab.title} (variant {seed})

Time box: {minutes} minutes (plus up to 50 % for a candidate new to the tools).
The candidate has `candidate/` only. Keep this folder, `solutions/` and `tests/` away from them.

## Grade it

```
srelab check {lab.number} --notebook their/{lab.slug}.ipynb --json report.json
```

The notebook remembers its variant ({seed}); the checks re-run every workload on your machine,
in a sandbox where the OS allows it. The report lists each check (diagnosis or fix), its hint,
the attempts, the flags, and a summary of the candidate's transcript (cells run, `check()`
calls, hints used, time to the first passing diagnosis and fix). The transcript informs; the
re-run decides.

## What this variant should show

| evidence or answer | expected |
|---|---|
{rows}

## Rubric

{chr(10).join(rubric)}
## Hints the candidate could have asked for

{chr(10).join(hint_lines) or "- none"}

## What the report's flags mean

Flags come from the candidate's own lines (cell and line given); they inform, the checks
decide. A lab's own exercises may need some (they are left out then).

{flag_lines}

## Model answer, where the classic answer falls short, follow-up questions

{_section(lab, "6. Debrief")}
"""


def _html(markdown_text: str, title: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>body{{font-family:sans-serif;max-width:60em;margin:2em"
        " auto;line-height:1.45}}table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;"
        "padding:.3em .6em;text-align:left}}code,pre{{background:#f4f4f4}}@media print{{body"
        "{{max-width:none}}}}</style></head><body>" + body + "</body></html>\n"
    )


def write(lab_key, *, seed: int, out: str | Path, wheel: bool = False) -> dict[str, Path]:
    """Write the candidate bundle and the interviewer sheet under `out`; the paths written."""
    lab = labs.get(lab_key)
    if not lab.done or not lab.notebook_path.exists():
        raise InterviewError(f"lab {lab.number} is not ready (see `srelab list`)")
    if not isinstance(seed, int) or seed < 0:
        raise InterviewError(f"--seed must be a non-negative integer, got {seed!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InterviewError(f"{out} exists and is not empty: choose a new folder")
    sheet_md = sheet(lab, seed)  # fails early, before writing anything, outside a checkout
    candidate, interviewer = out / "candidate", out / "interviewer"
    candidate.mkdir(parents=True)
    interviewer.mkdir(parents=True)
    paths = {
        "notebook": candidate / f"{lab.slug}.ipynb",
        "brief": candidate / "BRIEF.md",
        "sheet (Markdown)": interviewer / "sheet.md",
        "sheet (HTML)": interviewer / "sheet.html",
    }
    nb = candidate_notebook(lab, seed)
    paths["notebook"].write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    paths["brief"].write_text(brief(lab, seed))
    paths["sheet (Markdown)"].write_text(sheet_md)
    paths["sheet (HTML)"].write_text(_html(sheet_md, f"Lab {lab.number}, variant {seed}"))
    if wheel:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(candidate),
             str(labs.REPO_ROOT)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if r.returncode != 0:
            raise InterviewError(f"building the wheel failed: {r.stderr.strip()[-500:]}")
        paths["wheel"] = next(candidate.glob("*.whl"))
    return paths
