"""Run Prometheus rules over series with the real `promtool`, and read back which alerts fired.

    >>> from labsupport.telemetry import promtool
    >>> rules = '''
    ... groups:
    ... - name: demo
    ...   rules:
    ...   - alert: Hot
    ...     expr: temp > 80
    ...     for: 30s
    ... '''
    >>> hot = promtool.Series("temp", {"gpu": "1"}, [70, 85, 85, 85, 85, 70])
    >>> cool = promtool.Series("temp", {"gpu": "0"}, [70] * 6)
    >>> fired = promtool.firing(rules, [hot, cool], keys=["0", "1"], interval_s=15, until_s=75)
    >>> [(t, sorted(f)) for t, f in fired.items() if f]
    [(45, ['1']), (60, ['1'])]

`promtool test rules` (Debian's `prometheus` package; https://prometheus.io/docs/prometheus/
latest/configuration/unit_testing_rules/) evaluates rule files over `input_series` exactly as
Prometheus would, `for:` and `keep_firing_for:` included, and writes the `ALERTS` series it
keeps for each pending or firing alert. `firing` asks it, at every evaluation, which values of
one label (`by`, e.g. `gpu`) have a firing alert: each test's expected value is 0 and promtool
prints what it got instead, a bit per key (plus one for alerts that lost the label). Nothing
but promtool evaluates the rules: the learner's expressions are never parsed here.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labsupport import isolate

PROMTOOL = "promtool"
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")
_FAILED = re.compile(
    r"time: (?P<time>[0-9hms.]+),\s*\n\s*exp: \{\} (?P<exp>\S+)\s*\n\s*got: \{\} (?P<got>\S+)"
)


class PromtoolMissing(RuntimeError):
    """promtool is not installed (Debian/Ubuntu: apt-get install prometheus)."""


class RulesInvalid(ValueError):
    """promtool rejected the rule file; `errors` holds its messages."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Series:
    """One input series: a metric name, its labels, one value per scrape (NaN: no sample)."""

    name: str
    labels: dict
    values: list

    def selector(self) -> str:
        body = ",".join(f'{k}="{v}"' for k, v in self.labels.items())
        return f"{self.name}{{{body}}}"

    def values_text(self) -> str:
        return " ".join("_" if _missing(v) else format(float(v), ".15g") for v in self.values)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def path() -> str:
    found = shutil.which(PROMTOOL)
    if not found:
        raise PromtoolMissing(
            "promtool is not installed: it comes with Prometheus (Debian/Ubuntu: "
            "`apt-get install prometheus`, or a release from https://prometheus.io/download/)"
        )
    return found


def available() -> bool:
    return shutil.which(PROMTOOL) is not None


def version() -> str:
    out = subprocess.run([path(), "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def check_rules(text: str) -> list[str]:
    """promtool's complaints about a rule file ([] when it is valid)."""
    with isolate.temp_dir() as tmp:
        rules = Path(tmp) / "rules.yml"
        rules.write_text(text)
        out = subprocess.run(
            [path(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
        )
    if out.returncode == 0:
        return []
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines()]
    found = [ln for ln in lines if ln and not ln.startswith(("Checking", "FAILED:"))]
    return [ln.replace(str(rules), "rules.yml") for ln in found] or ["promtool rejected it"]


def seconds(duration: str) -> float:
    """A Go duration as promtool prints it ('2m30s', '45s', '1h0m0s', '0s') in seconds."""
    m = _DURATION.match(duration)
    if not m or not duration:
        raise ValueError(f"not a duration: {duration!r}")
    h, mins, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mins or 0) * 60 + float(s or 0) + int(ms or 0) / 1000


def _probe(keys: list[str], by: str) -> str:
    terms = [
        f'(max(ALERTS{{alertstate="firing",{by}="{key}"}}) * {2**i} or vector(0))'
        for i, key in enumerate(keys)
    ]
    terms.append(f'(max(ALERTS{{alertstate="firing",{by}=""}}) * {2 ** len(keys)} or vector(0))')
    return " + ".join(terms)


def _test_file(series: list[Series], probe: str, interval_s: int, times: list[int]) -> dict:
    return {
        "rule_files": ["rules.yml"],
        "evaluation_interval": f"{interval_s}s",
        "tests": [
            {
                "interval": f"{interval_s}s",
                "input_series": [
                    {"series": s.selector(), "values": s.values_text()} for s in series
                ],
                "promql_expr_test": [
                    {
                        "expr": probe,
                        "eval_time": f"{t}s",
                        "exp_samples": [{"labels": "{}", "value": 0}],
                    }
                    for t in times
                ],
            }
        ],
    }


def firing_many(
    rules: str,
    cases: dict[str, list[Series]],
    *,
    keys: list[str],
    interval_s: int,
    until_s: int,
    by: str = "gpu",
    timeout_s: float = 120.0,
) -> dict[str, dict[int, set[str]]]:
    """For each case (a name -> its series), at every evaluation from 0 to `until_s`: the `by`
    values with a firing alert ("" stands for alerts without that label). One promtool run."""
    errors = check_rules(rules)
    if errors:
        raise RulesInvalid(errors)
    times = list(range(0, until_s + 1, interval_s))
    probe = _probe(keys, by)
    names = list(cases)
    with isolate.temp_dir() as tmp:
        root = Path(tmp)
        (root / "rules.yml").write_text(rules)
        files = []
        for i, name in enumerate(names):
            f = root / f"case{i}.yml"
            # JSON is YAML (1.2), and Python writes it a hundred times faster than PyYAML
            f.write_text(json.dumps(_test_file(cases[name], probe, interval_s, times)))
            files.append(f.name)
        out = subprocess.run(
            [path(), "test", "rules", *files],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
        )
    return _parse(out.stdout, names, keys, times)


def _parse(text: str, names: list[str], keys: list[str], times: list[int]):
    sections = re.split(r"^Unit Testing:\s+case(\d+)\.yml\s*$", text, flags=re.M)
    result = {name: {t: set() for t in times} for name in names}
    seen = set()
    for number, body in zip(sections[1::2], sections[2::2], strict=True):
        name = names[int(number)]
        seen.add(name)
        if "SUCCESS" not in body and "FAILED" not in body:
            raise RuntimeError(f"promtool could not run the rules on {name}: {body.strip()[:500]}")
        for m in _FAILED.finditer(body):
            t = int(round(seconds(m.group("time"))))
            bits = int(round(float(m.group("got"))))
            result[name][t] = {key for i, key in enumerate(keys) if bits >> i & 1}
            if bits >> len(keys) & 1:
                result[name][t].add("")
    if seen != set(names):
        raise RuntimeError(f"promtool did not report every case: {text.strip()[:800]}")
    return result


def firing(
    rules: str, series: list[Series], *, keys: list[str], interval_s: int, until_s: int, by="gpu"
) -> dict[int, set[str]]:
    """`firing_many` for one case."""
    cases = {"case": series}
    return firing_many(rules, cases, keys=keys, interval_s=interval_s, until_s=until_s, by=by)[
        "case"
    ]
