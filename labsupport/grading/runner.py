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
import os
import sys
import time
from pathlib import Path

from labsupport import device, isolate, labs
from labsupport.grading import report

DEFAULT_TIMEOUT_S = 1800


def _fingerprint(lab) -> dict[str, str]:
    """sha256 of every file this lab's verdicts depend on: its checks and their reference
    answers, the test suite's shared modules and conftest files, and the package."""
    import hashlib

    tests = labs.REPO_ROOT / "tests"
    files = [
        lab.test_path,
        tests / "labs" / "truth" / f"{lab.symptom}.py",
        *sorted(p for p in (tests / "labs").glob("*.py") if not p.name.startswith("test_")),
        *sorted(tests.glob("*.py")),
        *sorted((labs.REPO_ROOT / "labsupport").rglob("*.py")),
    ]
    out = {}
    for f in files:
        if not f.exists():
            continue
        try:
            out[str(f.relative_to(labs.REPO_ROOT))] = hashlib.sha256(f.read_bytes()).hexdigest()
        except OSError:
            out[str(f)] = "unreadable"
    return out


def _grader_failure(title: str, hint: str) -> dict:
    return {"check": title, "doc": "", "outcome": "failed", "hint": hint, "duration_s": 0}


def grade(
    lab_key,
    target: str | Path | None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    echo=None,
    extra_args: tuple[str, ...] = (),
    seed: int | None = None,
    attempt_key: str | None = None,
) -> dict:
    """Run lab `lab_key`'s checks against `target` (None: solutions/); return the report dict.

    The report: lab, target, seed, passed, attempt, environment, sandbox, duration_s, checks
    (one dict per check: check, doc, kind, outcome, hint, duration_s, flags), flags.
    attempt_key: count attempts under this notebook path instead of `target`. The checks run in a
    fresh pytest process that signs its report with a key only this process and it know; a
    report that is missing, unsigned, or disagrees with pytest's exit status fails, and so does
    a run during which the grader's own files changed.
    """
    lab = labs.get(lab_key)
    if not lab.test_path.exists():
        if lab.done:
            raise FileNotFoundError(
                f"lab {lab.number}'s checks are not on this machine ({lab.test_path}): this "
                "install has the labs without their checks (a class or interview image); your "
                "instructor or interviewer grades your notebook"
            )
        raise FileNotFoundError(f"lab {lab.number} has no checks yet ({lab.test_path})")
    target_path = Path(target).resolve() if target else None
    if target_path is not None and not target_path.exists():
        raise FileNotFoundError(f"no such notebook: {target}")
    started = time.time()
    before = _fingerprint(lab)
    key = os.urandom(32)
    with isolate.temp_dir() as tmp:
        json_path = tmp / "report.json"
        read_end, write_end = os.pipe()
        os.write(write_end, key)
        os.close(write_end)
        args = [
            str(lab.test_path),
            "-q",
            "-p",
            "no:cacheprovider",
            "--no-header",
            f"--rootdir={labs.REPO_ROOT}",
            f"--srelab-json={json_path}",
            f"--srelab-key-fd={read_end}",
            *(["--srelab-progress"] if echo is not None else []),
            *extra_args,
        ]
        if seed is not None:
            args.append(f"--lab-seed={int(seed)}")
        if target_path is not None:
            args.append(f"--lab-notebook={target_path}")
        code = f"import sys, pytest; sys.exit(pytest.main({args!r}))"
        try:
            run = isolate.run_python(
                code, timeout_s=timeout_s, cwd=labs.REPO_ROOT, echo=echo, pass_fds=(read_end,)
            )
        finally:
            os.close(read_end)
        try:
            data = json.loads(json_path.read_text()) if json_path.exists() else None
        except ValueError:
            data = None
    changed = sorted(k for k, v in _fingerprint(lab).items() if before.get(k) != v)
    checks, environment = _checks_from(data, run, key)
    if changed:
        checks.append(
            _grader_failure(
                "grader files unchanged",
                "the grader's own files changed while grading ("
                + ", ".join(changed[:5])
                + "): this report cannot be trusted; restore them (git checkout) and grade again",
            )
        )
    flags = []
    for c in checks:
        flags += [dict(f, check=c["check"]) for f in c.get("flags", [])]
    from labsupport import contain

    return {
        "lab": lab.slug,
        "target": str(target_path) if target_path else str(lab.solution_path),
        "seed": seed,
        "passed": report.all_passed(checks),
        "attempt": report.next_attempt(lab.number, attempt_key or str(target_path or "")),
        "environment": environment,
        "sandbox": (data or {}).get("sandbox") or contain.sandbox().describe(),
        "duration_s": round(time.time() - started, 2),
        "python": sys.version.split()[0],
        "checks": checks,
        "flags": flags,
    }


def _checks_from(data, run, key: bytes) -> tuple[list[dict], dict]:
    """The checks of a signed report whose verdicts agree with pytest's exit status."""
    if data is None:
        why = run.error or "pytest wrote no report"
        tail = "\n".join(
            run.stdout.strip().splitlines()[-15:] + run.stderr.strip().splitlines()[-5:]
        )
        return [
            _grader_failure("grading run", f"the grader itself did not finish: {why}\n{tail}")
        ], device.environment()
    if not report.verify(data, key):
        return [
            _grader_failure(
                "grading run",
                "the report is not the one the grader wrote (its signature does not match): "
                "something rewrote it; nothing in it counts",
            )
        ], device.environment()
    checks = [
        c
        for c in data["checks"]
        if c["nodeid"].startswith("tests/labs/")
        or "/tests/labs/" in c["nodeid"]
        or c["nodeid"].startswith("test_")
    ] or data["checks"]
    failed_any = any(c["outcome"] == "failed" for c in checks)
    if (run.returncode == 0) == failed_any:
        checks = [dict(c, outcome="failed") if c["outcome"] == "passed" else c for c in checks]
        checks.append(
            _grader_failure(
                "grading run",
                f"pytest exited with status {run.returncode} but its report says "
                f"{'some checks failed' if failed_any else 'none failed'}: the run is not trusted",
            )
        )
    return checks, data["environment"]
