"""The README's two generated tables: the labs (from the registry) and the measured figures.

    >>> from labsupport import readme_tables
    >>> readme_tables.lab_table().splitlines()[0].split(" | ")[:3]
    ['| lab', 'symptom', 'domain']
    >>> run = {"lab": "290_p99_spikes", "environment": {"device": "cpu"}, "scale": "suite",
    ...        "headlines": [{"metric": "p99 TTFT", "before": 748.0, "after": 87.0, "unit": "ms",
    ...                       "ratio": 8.6}]}
    >>> readme_tables.figure_row(run)
    '| 290 | p99 TTFT | cpu, suite scale | 748 ms | 87 ms | 8.6x |'

The lab table sits between `<!-- lab-table -->` markers, the figures between
`<!-- figures-table -->` markers. `python -m labsupport.readme_tables` rewrites the lab
table; `--figures DIR` also rebuilds the figures from the `srelab run NNN --json` files in DIR
(the suite's notebook test leaves them there when SRELAB_FIGURES_DIR names it).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from labsupport import labs

README = labs.REPO_ROOT / "README.md"
LAB_MARKERS = ("<!-- lab-table -->", "<!-- /lab-table -->")
FIGURE_MARKERS = ("<!-- figures-table -->", "<!-- /figures-table -->")
_HEADER = (
    "| lab | symptom | domain | GPU | learner minutes | headline (before vs after, one run) "
    "| status |\n|---|---|---|---|---|---|---|"
)


def lab_row(lab: labs.Lab) -> str:
    """One registry entry as a README row; ready labs link their learner notebook."""
    title = f"[{lab.title}](labs/{lab.slug}.ipynb)" if lab.done else lab.title
    minutes = str(lab.learner_minutes) if lab.done and lab.learner_minutes else "-"
    status = "✅ ready" if lab.done else "planned"
    return (
        f"| {lab.number} | {title} | {lab.domain} | {lab.gpu} | {minutes} | {lab.headline} "
        f"| {status} |"
    )


def lab_table() -> str:
    """Every registered lab, in order."""
    return "\n".join([_HEADER, *(lab_row(lab) for lab in labs.LABS)])


def _figure(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def figure_row(run: dict) -> str:
    """The first headline of one `srelab run --json` result as a README row."""
    h = run["headlines"][0]
    r = h.get("ratio")
    ratio = (
        "∞" if h.get("ratio_infinite") or r is None else f"{r:.0f}x" if r >= 100 else f"{r:.2g}x"
    )
    machine = f"{run['environment']['device']}, {run.get('scale', 'full')} scale"
    unit = f" {h['unit']}" if h.get("unit") else ""
    number = run["lab"].split("_", 1)[0]
    return (
        f"| {number} | {h['metric']} | {machine} | {_figure(h['before'])}{unit} "
        f"| {_figure(h['after'])}{unit} | {ratio} |"
    )


def figures_table(runs: list[dict]) -> str:
    """Rows for the runs, by lab number."""
    head = "| lab | headline | machine | before | after | ratio |\n|---|---|---|---|---|---|"
    rows = sorted((figure_row(r) for r in runs if r.get("headlines")), key=lambda r: r[:6])
    return "\n".join([head, *rows])


def _replace(text: str, markers: tuple[str, str], body: str) -> str:
    start, end = markers
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no {start} ... {end} block")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def current(text: str, markers: tuple[str, str]) -> str:
    """What sits between the markers now."""
    start, end = markers
    m = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    if not m:
        raise ValueError(f"README has no {start} ... {end} block")
    return m.group(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--figures", type=Path, help="a folder of `srelab run --json` files")
    args = parser.parse_args(argv)
    text = _replace(README.read_text(), LAB_MARKERS, lab_table())
    if args.figures:
        files = sorted(args.figures.glob("*.json"))
        if not files:
            parser.error(f"no .json files in {args.figures}")
        runs = [json.loads(f.read_text()) for f in files]
        text = _replace(text, FIGURE_MARKERS, figures_table(runs))
    README.write_text(text)
    print(f"rewrote {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
