"""Lab 288's reference answers: how long a start takes, what a manifest allows it, the rubric.

    >>> from tests.labs.truth import killed_while_loading as truth
    >>> truth.slowest_start_s([truth.HAND_MADE])
    4.64
    >>> truth.startup_budget_s(truth.scenario.variant(0).manifest)  # liveness only: 5 + 3 x 10
    35.0

Never part of the package: a candidate with `labsupport` installed cannot import the rule that
grades them. The checks of tests/labs/test_288_killed_while_loading.py compare the learner's
slowest start with `slowest_start_s` on generated evidence (`cases(seed)`, built so that the
usual near misses give other numbers) and with the port-open time measured beside real starts;
they judge the learner's manifest with `startup_budget_s`, `budget_bounds` and
`hang_detection_s`.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone

import yaml

from labsupport.scenarios import killed_while_loading as scenario
from labsupport.scenarios.killed_while_loading.starts import (
    LISTENING,
    STARTUP,
    rfc3339_nano,
    rfc3339_nano_fixed,
)

TOLERANCE_S = 0.25  # log timestamps vs TCP connects every 20 ms, on a busy machine
EXACT_S = 0.002  # on written evidence the answer is exact (microsecond parsing is enough)
MIN_MARGIN = 1.5  # startup budget / slowest start
HANG_BOUND_S = 60.0  # manifest seconds: liveness must catch a hang right after the start
MAX_STARTUP_PERIOD_S = 10.0  # a server that is up waits up to one period for its success
PROBE_DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}

# A start written by hand, answer known: 4.64 s (the server's own total_s says 3.45 s; from the
# first log line it is 3.6 s). Every check asks it first, so a stub fails at once.
HANDMADE_S = 4.64
HAND_MADE = {
    "startedAt": "2026-11-25T14:02:11.5Z",
    "logs": [
        "2026-11-25T14:02:12.540000000Z slow_start: loaded, sleeping 3.0 s before binding",
        '2026-11-25T14:02:15.601000000Z startup {"generate_s": 0.25, "read_s": 0.2, '
        '"total_s": 3.45, "slow_start_s": 3.0}',
        "2026-11-25T14:02:16.102000000Z INFO:     Started server process [4242]",
        "2026-11-25T14:02:16.140000000Z listening on http://127.0.0.1:8000",
    ],
}


# ---- the diagnosis: a start, from the kubelet's clock to the first possible answer ----------
def ns(stamp: str) -> int:
    """RFC 3339 in UTC ('Z' or '+00:00', 0-9 fractional digits) as integer nanoseconds."""
    text = stamp.strip()
    if text.endswith("Z"):
        text = text[:-1]
    elif text.endswith("+00:00"):
        text = text[:-6]
    whole, _, fraction = text.partition(".")
    base = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(base.timestamp()) * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


def _stamped(start: dict) -> list[tuple[int, str]]:
    out = []
    for line in start["logs"]:
        stamp, _, text = line.partition(" ")
        out.append((ns(stamp), text))
    return out


def start_duration_s(start: dict) -> float:
    """Seconds from the container's start to the line saying the server listens."""
    began = ns(start["startedAt"])
    served = next(t for t, text in _stamped(start) if text.startswith(LISTENING))
    return (served - began) / 1e9


def slowest_start_s(starts: list[dict]) -> float:
    """The graded answer on written evidence: the longest start_duration_s."""
    return max(start_duration_s(s) for s in starts)


def near_misses(starts: list[dict]) -> dict[str, float]:
    """What the usual wrong readings of the same evidence give, named for the hint."""
    durations = [start_duration_s(s) for s in starts]
    out = {
        "the last start instead of the slowest": durations[-1],
        "the first start instead of the slowest": durations[0],
        "the fastest start": min(durations),
        "the mean of the starts": sum(durations) / len(durations),
    }
    first, own, startup, last = [], [], [], []
    for s in starts:
        began, lines = ns(s["startedAt"]), _stamped(s)
        served = next(i for i, (_, text) in enumerate(lines) if text.startswith(LISTENING))
        first.append((lines[served][0] - lines[0][0]) / 1e9)
        own.append(_total_s(lines))
        last.append((lines[-1][0] - began) / 1e9)
        startup.append(
            next(((t - began) / 1e9 for t, x in lines if x.startswith(STARTUP)), math.nan)
        )
    out["from the first log line, not from startedAt"] = max(first)
    out["the server's own total_s"] = max(own)
    out["until the 'startup' line, not until it listens"] = max(startup)
    out["until the last log line"] = max(last)
    return {k: v for k, v in out.items() if not math.isnan(v)}


def _total_s(lines: list[tuple[int, str]]) -> float:
    for _, text in lines:
        if text.startswith(STARTUP):
            return float(json.loads(text[len(STARTUP) :]).get("total_s", math.nan))
    return math.nan


# ---- written evidence, built to separate the answer from the near misses ---------------------
def _written_start(rng: random.Random, began_ns: int, *, compile_s: float, tail: int) -> dict:
    """One start's evidence as Kubernetes prints it, with plausible, seeded phase times."""
    init_s = rng.uniform(0.9, 2.6)  # interpreter, torch import, device: before any line
    phases = {
        "generate_s": round(rng.uniform(0.1, 0.9), 4),
        "read_s": round(rng.uniform(0.03, 0.3), 4),
        "to_device_s": round(rng.uniform(0.005, 0.05), 4),
        "warmup_s": round(rng.uniform(0.005, 0.05), 4),
    }
    loaded = sum(phases.values())
    phases["total_s"] = round(loaded + compile_s, 4)
    phases["slow_start_s"] = compile_s
    t = began_ns + int((init_s + loaded) * 1e9)
    lines = [(t, f"slow_start: loaded, sleeping {compile_s:g} s before binding")]
    t += int((compile_s + rng.uniform(0.001, 0.02)) * 1e9)
    lines.append((t, STARTUP + json.dumps(phases)))
    t += int(rng.uniform(0.06, 0.5) * 1e9)
    lines.append((t, f"INFO:     Started server process [{rng.randint(100, 30000)}]"))
    t += int(rng.uniform(0.004, 0.05) * 1e9)
    lines.append((t, LISTENING + "http://0.0.0.0:8000"))
    for _ in range(tail):  # the probes' requests once it serves
        t += int(rng.uniform(0.8, 3.0) * 1e9)
        lines.append((t, 'INFO:     10.0.0.1:51234 - "GET /health HTTP/1.1" 200 OK'))
    return {
        "startedAt": rfc3339_nano(began_ns),
        "logs": [f"{rfc3339_nano_fixed(t)} {text}" for t, text in lines],
    }


def cases(seed: int) -> dict[str, list[dict]]:
    """Written evidence for `seed`: label -> starts. Each case is built so that reading the
    wrong clock, the wrong line or the wrong start gives a different number."""
    rng = random.Random(f"288-{seed}")
    out: dict[str, list[dict]] = {}
    base = ns(f"2026-11-{rng.randint(10, 27)}T{rng.randint(8, 20):02d}:41:07Z")
    base += rng.randint(0, 999_999_999)
    middle = [
        _written_start(rng, base, compile_s=2.5, tail=2),
        _written_start(rng, base + 61_000_000_000, compile_s=4.5, tail=3),
        _written_start(rng, base + 125_000_000_000, compile_s=3.0, tail=2),
    ]
    out["three starts a minute apart, the slowest in the middle, probes logged after"] = middle
    midnight = ns("2026-12-31T23:59:57Z") + rng.randint(1, 999) * 1_000_000
    out["a start across midnight on New Year's Eve, then a faster one"] = [
        _written_start(rng, midnight, compile_s=4.0, tail=1),
        _written_start(rng, midnight + 30_000_000_000, compile_s=1.5, tail=1),
    ]
    whole = ns(f"2026-11-25T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:11Z")
    out["one start at a whole second (startedAt without a fraction)"] = [
        _written_start(rng, whole, compile_s=rng.choice((2.0, 3.5)), tail=0)
    ]
    return out


# ---- the fix: what a manifest allows a start, and how fast liveness catches a hang ---------
def _container(manifest) -> dict:
    obj = yaml.safe_load(manifest) if isinstance(manifest, str) else manifest
    pod = obj["spec"]["template"]["spec"] if obj.get("kind") == "Deployment" else obj["spec"]
    return pod["containers"][0]


def probe(manifest, kind: str) -> dict | None:
    """The probe (`startupProbe`, `livenessProbe`, `readinessProbe`) with Kubernetes defaults."""
    found = _container(manifest).get(kind)
    return None if found is None else {**PROBE_DEFAULTS, **found}


def startup_budget_s(manifest) -> float:
    """Manifest seconds the probes give a start: initialDelaySeconds + failureThreshold x
    periodSeconds, the rule of the Kubernetes docs (the kill itself comes with the
    failureThreshold-th failure, one period earlier). The startupProbe's when there is one;
    without one, liveness decides from the start. Infinite when neither probe exists."""
    found = probe(manifest, "startupProbe") or probe(manifest, "livenessProbe")
    if found is None:
        return math.inf
    return float(found["initialDelaySeconds"] + found["failureThreshold"] * found["periodSeconds"])


def budget_bounds(load_s: float) -> tuple[float, float]:
    """(least, most) startup budget for a slowest start of `load_s` manifest seconds: a
    margin for slower starts, and a limit past which a stuck start sits unrestarted."""
    return MIN_MARGIN * load_s, max(5.0 * load_s, load_s + 300.0)


def hang_detection_s(manifest, load_s: float) -> float:
    """Manifest seconds liveness needs, at worst, to restart a server that hangs right after a
    start of `load_s`: its initial delay still to run (counted from the container's start),
    then failureThreshold probes, each a period apart or a timeout long."""
    live = probe(manifest, "livenessProbe")
    if live is None:
        return math.inf
    wait = max(0.0, live["initialDelaySeconds"] - load_s)
    return wait + live["failureThreshold"] * max(live["periodSeconds"], live["timeoutSeconds"])


def static_loads(seed: int) -> list[float]:
    """Load times (manifest seconds) a manifest is sized for in the static checks."""
    rng = random.Random(f"288-loads-{seed}")
    return [45.0, round(rng.uniform(70, 160), 1), 600.0, round(rng.uniform(1200, 2400), 1)]


# ---- interviewer material -------------------------------------------------------------------
def answer_key(seed: int) -> dict:
    """The variant's graded ground truth (what a seed changes, and what must be found)."""
    v = scenario.variant(seed)
    graded = v.graded_sizes()
    return {
        "server": {"weights_mb": v.server.weights_mb, "compile_s": v.server.compile_s},
        "graded_debug_starts": [(s.weights_mb, s.compile_s) for s in graded],
        "slowest_graded_start": max(range(len(graded)), key=lambda i: graded[i].compile_s),
        "hang_after_ready_cluster_s": v.hang_after_ready_s,
        "written_evidence_answers_s": {
            k: round(slowest_start_s(c), 6) for k, c in cases(seed).items()
        },
        "slowest_start": "measured in the grading run: startedAt -> port open, the largest",
        "startup_budget": "between 1.5x and max(5x, +300 s) of the load it is given",
        "liveness": f"catches a hang right after the start within {HANG_BOUND_S:g} cluster s",
    }


def expected(seed: int) -> dict:
    """What the interviewer should see in variant `seed` (CPU, 2 cores; a GPU adds CUDA init)."""
    v = scenario.variant(seed)
    low, high = v.server.compile_s + 1.0, v.server.compile_s + 3.5  # real seconds
    load = high / scenario.TIME_SCALE  # manifest seconds
    period = 5
    failures = math.ceil(2 * load / period)
    return {
        "server": f"{v.server.weights_mb:g} MB of weights, {v.server.compile_s:g} s compile",
        "incident pod": (
            "liveness (initialDelaySeconds 5, periodSeconds 10, failureThreshold 3) fails with "
            "'connection refused' and kills every start 25 cluster s (2.5 real s) after it "
            "started: 'Killing ... failed liveness probe, will be restarted', exit code 143; "
            "restarts at once, then BackOff 10 s, 20 s, 40 s ...; never ready"
        ),
        "slowest start": (
            f"about {low:.1f}-{high:.1f} real s = {low / scenario.TIME_SCALE:.0f}-{load:.0f} "
            "cluster s on an idle 2-core CPU (more on a busy one), startedAt to the "
            "'listening on' line"
        ),
        "the runbook number": (
            "the server's own total_s is 1-3 s shorter: its timers start after the interpreter, "
            "torch and the device are up; a candidate who reports it undersizes the budget"
        ),
        "a passing fix": (
            f"for a {load:.0f} s load: startupProbe httpGet /health, periodSeconds {period}, "
            f"failureThreshold {failures} ({period * failures} s); liveness 10 s x 3 kept, no "
            "initialDelaySeconds; readiness kept"
        ),
        "hang": (
            f"the event loop is blocked {v.hang_after_ready_s:g} cluster s after the pod got "
            "ready; a 10 s x 3 liveness restarts it in about 20-35 cluster s (bound 60)"
        ),
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Reads the events: liveness kills with 'connection refused' before the server "
            "listens, exit 143 is SIGTERM from the kubelet, not a crash. Measures the start as "
            "the kubelet counts it, startedAt to the first moment the port answers, on several "
            "starts, takes the slowest, and says why the server's own total_s is shorter."
        ),
        "adequate": (
            "Finds that the start is longer than liveness allows and measures it from the "
            "logs, but from the first log line or the server's own timer, or from one start."
        ),
        "weak": (
            "Blames the node, the GPU or an OOM, or raises timeouts without measuring how "
            "long a start takes."
        ),
    },
    "fix": {
        "strong": (
            "A startupProbe on /health whose failureThreshold x periodSeconds covers the "
            "slowest start with a margin and is computed from it, liveness kept short with no "
            "initial delay, readiness kept; the pod is ready on its first start and a later "
            "hang is restarted within a minute."
        ),
        "adequate": (
            "A startupProbe with a fixed, generous budget (the classic 30 x 10 s) that fits "
            "this model but not the next, or liveness left with a long initial delay."
        ),
        "weak": (
            "initialDelaySeconds or failureThreshold raised on liveness, or liveness removed: "
            "the start survives, a hang after it goes unnoticed for minutes or forever."
        ),
    },
    "reasoning": {
        "strong": (
            "Explains that liveness and readiness do not run until the startup probe succeeds "
            "and that it never runs again afterwards; bounds the budget from both sides (a stuck "
            "download must still be restarted); mentions making starts faster (weights on a "
            "volume, vLLM's compile cache) and progressDeadlineSeconds for rollouts."
        ),
        "adequate": (
            "Knows the three probes' roles but sizes the budget by feel, or forgets what a "
            "budget that is too large costs."
        ),
        "weak": "Treats the probes as interchangeable timeouts.",
    },
}
