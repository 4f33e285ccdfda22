"""Per-check results: collected from pytest, written as JSON, shown as a table.

>>> from labsupport.grading import report
>>> rows = [{"check": "fix_beats_default", "outcome": "failed", "hint": "freeze the heap",
...          "duration_s": 1.2}]
>>> print(report.render_table(rows))  # doctest: +NORMALIZE_WHITESPACE
check              result  time
fix_beats_default  FAIL    1.2 s
    > freeze the heap
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

from labsupport import device

_PREFIXES = ("AssertionError: ", "Failed: ", "AssertionError")


def new_entry(nodeid: str, doc: str = "") -> dict:
    name = nodeid.split("::")[-1]
    check = name[5:] if name.startswith("test_") else name
    return {
        "nodeid": nodeid,
        "check": check,
        "doc": doc,
        "outcome": "not run",
        "hint": "",
        "duration_s": 0.0,
    }


def hint_from(longrepr) -> str:
    """The one line a learner needs from a failure: the assertion message, not a traceback."""
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # skips: (path, lineno, reason)
        return str(longrepr[-1]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr).strip().splitlines()[-1]
    if "Timeout" in text and "pytest-timeout" in text:
        return (
            "timed out: " + text.split("Timeout", 1)[1].strip(" ()").split(")")[0] + " - "
            "does your code finish? (the check's time limit was reached)"
        )
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    # pytest appends its assertion introspection after the message: keep the message only
    text = text.split("\nassert ", 1)[0].strip()
    if text.startswith("NotImplementedError"):
        text = "not implemented yet - " + text.removeprefix("NotImplementedError:").strip()
    return text or "failed (no message)"


def update_entry(entry: dict, rep) -> None:
    """Fold one phase (setup/call/teardown) of pytest's report into the check's entry."""
    entry["duration_s"] = round(entry["duration_s"] + float(rep.duration), 3)
    if rep.skipped:
        if entry["outcome"] in ("not run", "passed"):
            entry["outcome"] = "skipped"
            entry["hint"] = hint_from(rep.longrepr)
        return
    if rep.failed:
        if entry["outcome"] != "failed":  # the first failure says the most
            entry["outcome"] = "failed"
            entry["hint"] = hint_from(rep.longrepr)
        return
    if rep.when == "call" and entry["outcome"] == "not run":
        entry["outcome"] = "passed"


def write_pytest_report(
    path: Path,
    results: list[dict],
    *,
    target,
    started: float,
    key: bytes | None = None,
    sandbox: str = "",
) -> None:
    payload = {
        "target": str(target) if target else "solutions/",
        "started": started,
        "duration_s": round(time.time() - started, 3),
        "environment": device.environment(),
        "sandbox": sandbox,
        "checks": results,
    }
    if key:
        payload["signature"] = sign(payload, key)
    path.write_text(json.dumps(payload, indent=2))


def sign(payload: dict, key: bytes) -> str:
    """HMAC-SHA256 of the report (without its signature), keyed by the grading run's secret."""
    import hashlib
    import hmac

    body = {k: v for k, v in payload.items() if k != "signature"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def verify(payload: dict, key: bytes) -> bool:
    import hmac

    return hmac.compare_digest(str(payload.get("signature", "")), sign(payload, key))


def summary(checks: list[dict]) -> dict:
    counts = {"passed": 0, "failed": 0, "skipped": 0, "not run": 0}
    for c in checks:
        counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
    return counts


def all_passed(checks: list[dict]) -> bool:
    """True when at least one check ran and none failed (skips do not fail a learner)."""
    counts = summary(checks)
    return counts["passed"] > 0 and counts["failed"] == 0 and counts["not run"] == 0


def render_table(checks: list[dict], width: int = 100) -> str:
    """Check, result and time per row; a failed check's hint on the lines below it."""
    label = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "not run": "----"}
    rows = [("check", "result", "time")]
    rows += [
        (c["check"], label.get(c["outcome"], c["outcome"]), f"{c.get('duration_s', 0):.1f} s")
        for c in checks
    ]
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    lines = [f"{rows[0][0]:<{w0}}  {rows[0][1]:<{w1}}  {rows[0][2]}"]
    for row, c in zip(rows[1:], checks, strict=True):
        lines.append(f"{row[0]:<{w0}}  {row[1]:<{w1}}  {row[2]}")
        hint = c.get("hint", "") if c["outcome"] != "passed" else ""
        if hint:
            wrapped = textwrap.wrap(" ".join(hint.split()), width=max(40, width - 6))
            lines.extend("    > " + chunk for chunk in wrapped)
    return "\n".join(lines)


def render_html(checks: list[dict]) -> str:
    """The same table for a notebook: one row per check, hints under failed ones."""
    import html

    colour = {"passed": "#1a7f37", "failed": "#cf222e", "skipped": "#9a6700"}
    label = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "not run": "----"}
    rows = []
    for c in checks:
        out = c["outcome"]
        hint = c.get("hint", "") if out != "passed" else ""
        rows.append(
            "<tr>"
            f"<td style='text-align:left'><code>{html.escape(c['check'])}</code>"
            + (f"<div style='color:#555;max-width:60em'>{html.escape(hint)}</div>" if hint else "")
            + "</td>"
            f"<td style='color:{colour.get(out, '#555')};font-weight:bold'>"
            f"{label.get(out, out)}</td>"
            f"<td>{c.get('duration_s', 0):.1f} s</td></tr>"
        )
    return (
        "<table><thead><tr><th style='text-align:left'>check</th><th>result</th>"
        "<th>time</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        f"<p><b>{html.escape(verdict_line(checks))}</b></p>"
    )


def verdict_line(checks: list[dict]) -> str:
    counts = summary(checks)
    if all_passed(checks):
        extra = f" ({counts['skipped']} skipped: see why above)" if counts["skipped"] else ""
        return f"All {counts['passed']} visible checks passed{extra}."
    return (
        f"{counts['failed']} of {len(checks)} checks failed; read the hints above, fix, "
        "and check again."
    )


def state_dir() -> Path:
    base = os.environ.get("SRELAB_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME", os.path.expanduser("~/.local/state")), "srelab"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def next_attempt(lab_number: int, target: str) -> int:
    """Count grading attempts per lab and notebook (interviewers read this in the report).

    `check()` in a notebook counts under that notebook's path, like `srelab check` of it.
    """
    path = state_dir() / "attempts.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    key = f"{lab_number}:{Path(target).resolve() if target else 'solutions'}"
    data[key] = data.get(key, 0) + 1
    path.write_text(json.dumps(data, indent=2))
    return data[key]
