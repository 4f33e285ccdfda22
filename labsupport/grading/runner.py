"""Grade one lab: run its checks in a fresh pytest process against a target notebook.

    >>> from labsupport.grading import runner
    >>> result = runner.grade("290", "labs/290_p99_spikes.ipynb")  # doctest: +SKIP
    >>> result["passed"], result["checks"][0]["hint"]                # doctest: +SKIP
    (False, 'not implemented yet - Exercise after_warmup: write your code here ...')

Each check has its own timeout inside that process (pytest-timeout); the whole run has one
too, and its process group is killed on expiry, so a learner's endless loop can cost time but
never hang the grader.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from labsupport import device, isolate, labs
from labsupport.grading import report

DEFAULT_TIMEOUT_S = 1800


def grade(
    lab_key,
    target: str | Path | None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    echo=None,
    extra_args: tuple[str, ...] = (),
) -> dict:
    """Run lab `lab_key`'s checks against `target` (None: solutions/); return the report dict.

    The report: lab, target, passed, attempt, environment, duration_s, checks (one dict per
    check: check, doc, outcome, hint, duration_s).
    """
    lab = labs.get(lab_key)
    if not lab.test_path.exists():
        raise FileNotFoundError(f"lab {lab.number} has no checks yet ({lab.test_path})")
    target_path = Path(target).resolve() if target else None
    if target_path is not None and not target_path.exists():
        raise FileNotFoundError(f"no such notebook: {target}")
    started = time.time()
    with isolate.temp_dir() as tmp:
        json_path = tmp / "report.json"
        args = [
            str(lab.test_path),
            "-q",
            "-p",
            "no:cacheprovider",
            "--no-header",
            f"--rootdir={labs.REPO_ROOT}",
            f"--srelab-json={json_path}",
            *extra_args,
        ]
        if target_path is not None:
            args.append(f"--lab-notebook={target_path}")
        code = f"import sys, pytest; sys.exit(pytest.main({args!r}))"
        run = isolate.run_python(code, timeout_s=timeout_s, cwd=labs.REPO_ROOT, echo=echo)
        data = json.loads(json_path.read_text()) if json_path.exists() else None
    if data is None:
        why = run.error or "pytest wrote no report"
        tail = "\n".join(
            run.stdout.strip().splitlines()[-15:] + run.stderr.strip().splitlines()[-5:]
        )
        checks = [
            {
                "check": "grading run",
                "doc": "",
                "outcome": "failed",
                "hint": f"the grader itself did not finish: {why}\n{tail}",
                "duration_s": 0,
            }
        ]
        environment = device.environment()
    else:
        checks = [
            c
            for c in data["checks"]
            if c["nodeid"].startswith("tests/labs/")
            or "/tests/labs/" in c["nodeid"]
            or c["nodeid"].startswith("test_")
        ] or data["checks"]
        environment = data["environment"]
    return {
        "lab": lab.slug,
        "target": str(target_path) if target_path else str(lab.solution_path),
        "passed": report.all_passed(checks),
        "attempt": report.next_attempt(lab.number, str(target_path or "")),
        "environment": environment,
        "duration_s": round(time.time() - started, 2),
        "python": sys.version.split()[0],
        "checks": checks,
    }
