"""`srelab grade-class`: a folder of submissions graded into a CSV and an HTML gradebook.

    >>> from labsupport import gradebook
    >>> out = gradebook.grade_class("class/", lab_key=290, jobs=2, out="class/")  # doctest: +SKIP
    >>> out["csv"].name, out["html"].name                                         # doctest: +SKIP
    ('gradebook_290.csv', 'gradebook_290.html')

One row per learner (the file's name without `.ipynb`), one column per check, the flags
their code raised, attempts, variant and sandbox. Each submission is graded by `srelab
check`'s runner in its own pytest process, with its own contained submission process, so
one learner's code never shares a process with another's. For a class that outgrows one
machine, `indexed_job_manifest` writes a Kubernetes Indexed Job (one pod per submission,
`$JOB_COMPLETION_INDEX` picks the file) whose pods write JSON reports;
`gradebook_from_reports` turns that folder of reports into the same gradebook.
"""

from __future__ import annotations

import csv
import html
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from labsupport import labs

LABEL = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "not run": "----"}


class GradebookError(Exception):
    """Nothing to grade, or a folder that is not one of submissions."""


def submissions(folder: Path) -> list[Path]:
    """The notebooks to grade: *.ipynb directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradebookError(f"{folder} is not a folder")
    found = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if not found:
        raise GradebookError(f"no .ipynb submissions in {folder}")
    return found


def _grade_one(lab, path: Path) -> dict:
    from labsupport.grading import runner

    try:
        report = runner.grade(lab.number, path, attempt_key=f"class:{path.resolve()}")
    except Exception as exc:  # a submission that breaks the runner still gets its row
        report = {
            "passed": False,
            "checks": [],
            "flags": [],
            "error": f"{type(exc).__name__}: {exc}",
        }
    report["learner"] = path.stem
    report["file"] = path.name
    return report


def grade_class(folder: Path, *, lab_key, jobs: int = 1, out: Path | None = None) -> dict:
    """Grade every submission in `folder` (`jobs` at once); write the CSV and HTML."""
    lab = labs.get(lab_key)
    if jobs < 1:
        raise GradebookError("--jobs must be at least 1")
    files = submissions(Path(folder))
    from labsupport import progress

    reports = []
    with ThreadPoolExecutor(max_workers=jobs) as pool, progress.bar(len(files), "graded") as bar:
        for report in pool.map(lambda p: _grade_one(lab, p), files):
            reports.append(report)
            bar.update()
    return write(lab, reports, Path(out or folder))


def gradebook_from_reports(folder: Path, *, lab_key, out: Path | None = None) -> dict:
    """The gradebook of a folder of JSON reports (what the Indexed Job's pods wrote)."""
    lab = labs.get(lab_key)
    reports = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except ValueError:
            report = {"passed": False, "checks": [], "flags": [], "error": "unreadable report"}
        report.setdefault("learner", path.stem)
        report.setdefault("file", path.name)
        reports.append(report)
    if not reports:
        raise GradebookError(f"no .json reports in {folder}")
    return write(lab, reports, Path(out or folder))


def _columns(reports: list[dict]) -> list[str]:
    names: list[str] = []
    for r in reports:
        for c in r.get("checks", []):
            if c["check"] not in names:
                names.append(c["check"])
    return names


def rows(reports: list[dict]) -> tuple[list[str], list[dict]]:
    """The gradebook as a header and one dict per learner."""
    checks = _columns(reports)
    header = ["learner", "file", "passed", "score", *checks, "flags", "attempt", "seed", "error"]
    out = []
    for r in sorted(reports, key=lambda r: r["learner"]):
        by = {c["check"]: c for c in r.get("checks", [])}
        graded = [c for c in by.values() if c["outcome"] != "skipped"]
        row = {
            "learner": r["learner"],
            "file": r["file"],
            "passed": "yes" if r.get("passed") else "no",
            "score": f"{sum(c['outcome'] == 'passed' for c in graded)}/{len(graded)}",
            "flags": "; ".join(f"{f['kind']}: {f.get('detail', '')}" for f in r.get("flags", [])),
            "attempt": r.get("attempt", ""),
            "seed": r.get("seed", ""),
            "error": r.get("error", ""),
        }
        for name in checks:
            row[name] = LABEL.get(by[name]["outcome"], "") if name in by else ""
        out.append(row)
    return header, out


def write(lab, reports: list[dict], out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    header, table = rows(reports)
    csv_path = out / f"gradebook_{lab.number}.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(table)
    html_path = out / f"gradebook_{lab.number}.html"
    html_path.write_text(_html(lab, header, table, reports))
    return {"csv": csv_path, "html": html_path, "rows": len(table)}


def _html(lab, header: list[str], table: list[dict], reports: list[dict]) -> str:
    colour = {"PASS": "#dafbe1", "FAIL": "#ffebe9", "SKIP": "#fff8c5"}
    hints = {
        (r["learner"], c["check"]): c.get("hint", "") for r in reports for c in r.get("checks", [])
    }
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in table:
        cells = []
        for h in header:
            value = str(row.get(h, ""))
            tip = html.escape(hints.get((row["learner"], h), ""), quote=True)
            style = f" style='background:{colour[value]}'" if value in colour else ""
            cells.append(f"<td{style} title='{tip}'>{html.escape(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Gradebook, lab {lab.number}</title><style>body{{font-family:sans-serif}}"
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.25em .5em;"
        "font-size:90%}</style></head><body>"
        f"<h1>Lab {lab.number}: {html.escape(lab.title)}</h1>"
        "<p>One row per submission, one column per check (hover a cell for its hint). "
        "Flags come from the learner's own code; they inform, the checks decide.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "</body></html>\n"
    )


def indexed_job_manifest(
    lab_key,
    folder: Path,
    *,
    image: str = "llm-sre-labs-grader:latest",
    parallelism: int = 4,
    submissions_claim: str = "srelab-submissions",
    results_claim: str = "srelab-results",
) -> str:
    """A batch/v1 Indexed Job grading every submission in `folder`, one pod each.

    The pods mount the submissions read-only and a results volume, and run
    `srelab check NNN --notebook FILE --json /results/LEARNER.json` on the file their
    completion index picks; `srelab grade-class RESULTS --lab NNN --reports` builds the
    gradebook from the results. The image is the grader's (Dockerfile: it has the checks).
    """
    import yaml

    lab = labs.get(lab_key)
    names = [p.name for p in submissions(Path(folder))]
    files = " ".join(f"'{n}'" for n in names)
    script = (
        f'FILES=({files}); f="${{FILES[$JOB_COMPLETION_INDEX]}}"; '
        f'srelab check {lab.number} --notebook "/submissions/$f" '
        f'--json "/results/${{f%.ipynb}}.json"; test -s "/results/${{f%.ipynb}}.json"'
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"srelab-grade-{lab.number}", "labels": {"app": "srelab-grader"}},
        "spec": {
            "completionMode": "Indexed",
            "completions": len(names),
            "parallelism": max(1, min(parallelism, len(names))),
            "backoffLimitPerIndex": 1,
            "maxFailedIndexes": len(names),
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": {"app": "srelab-grader"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "grader",
                            "image": image,
                            "command": ["bash", "-c", script],
                            "resources": {
                                "requests": {"cpu": "2", "memory": "6Gi"},
                                "limits": {"cpu": "2", "memory": "8Gi"},
                            },
                            "volumeMounts": [
                                {
                                    "name": "submissions",
                                    "mountPath": "/submissions",
                                    "readOnly": True,
                                },
                                {"name": "results", "mountPath": "/results"},
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "submissions",
                            "persistentVolumeClaim": {
                                "claimName": submissions_claim,
                                "readOnly": True,
                            },
                        },
                        {"name": "results", "persistentVolumeClaim": {"claimName": results_claim}},
                    ],
                },
            },
        },
    }
    return yaml.safe_dump(job, sort_keys=False)
