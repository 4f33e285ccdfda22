"""Wrong submissions for lab 288 (killed while loading) that must fail a check they target.

Each is the solution with one exercise replaced. The manifest cheats mostly fail a static
check (no workload); the ones whose manifest reads right fail under the lab's kubelet.
"""

from tests.cheats.corpus import Cheat

DIAGNOSIS = ("test_slowest_start_matches_the_evidence_and_the_measured_starts",)
PROBES = "test_fixed_manifest_has_startup_liveness_and_readiness_probes"
BUDGET = "test_startup_budget_follows_the_load_time_from_both_sides"
SHORT = "test_liveness_stays_short_after_the_start"
READY = "test_fixed_pod_gets_ready_without_restarts"
HANG = "test_liveness_still_catches_a_later_hang"

# The incident's manifest with the learner's probes: {startup} and {liveness} are YAML blocks.
POD = '''
import math


def _pod(startup: str, liveness: str) -> str:
    return f"""\\
apiVersion: v1
kind: Pod
metadata:
  name: llm-server
spec:
  containers:
  - name: server
    image: registry.example.com/llm-server:2.3.1
    command: [python, -m, labsupport.serving.serve_cli]
    ports:
    - name: http
      containerPort: 8000
{startup}    readinessProbe:
      httpGet: {{path: /ready, port: http}}
      periodSeconds: 5
{liveness}"""


def _startup(budget_s: float, period: int = 5) -> str:
    return f"""\\
    startupProbe:
      httpGet: {{path: /health, port: http}}
      periodSeconds: {period}
      failureThreshold: {math.ceil(budget_s / period)}
"""


def _liveness(handler: str = "httpGet: {path: /health, port: http}", **fields) -> str:
    settings = {"periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3, **fields}
    lines = "".join(f"      {k}: {v}\\n" for k, v in settings.items())
    return f"    livenessProbe:\\n      {handler}\\n" + lines
'''


def _fix(body: str) -> tuple[str, ...]:
    return (POD + "\n\ndef fixed_manifest(load_time_seconds):\n" + body,)


CHEATS = [
    Cheat(
        288,
        "slowest start: the default variant's measured start, hard-coded",
        "hard-coded",
        ("def slowest_start_s(starts):\n    return 6.0\n",),
        DIAGNOSIS,
    ),
    Cheat(
        288,
        "startup budget: a fixed 100 s that fits the default load",
        "hard-coded",
        _fix("    return _pod(_startup(100), _liveness())\n"),
        (BUDGET,),
    ),
    Cheat(
        288,
        "slowest start: the server's own total_s, read with the scenario's phases_of",
        "package helper",
        (
            "from labsupport.scenarios.killed_while_loading import starts as _s\n\n\n"
            "def slowest_start_s(starts):\n"
            "    return max(\n"
            "        _s.phases_of([line.split(' ', 1)[1] for line in s['logs']])['total_s']\n"
            "        for s in starts\n"
            "    )\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        288,
        "slowest start: the reference answer imported from the checks' truth module",
        "package helper",
        (
            "def slowest_start_s(starts):\n"
            "    from tests.labs.truth import killed_while_loading as t\n\n"
            "    return t.slowest_start_s(starts)\n",
        ),
        DIAGNOSIS,
    ),
    Cheat(
        288,
        "startup budget sized from the package's variant, not from the load it is given",
        "package helper",
        _fix(
            "    from labsupport.scenarios import killed_while_loading as sc\n\n"
            "    v = sc.variant(0)\n"
            "    load = (v.server.compile_s + 3.5) / sc.TIME_SCALE\n"
            "    return _pod(_startup(2 * load), _liveness())\n"
        ),
        (BUDGET,),
    ),
    Cheat(
        288,
        "no liveness probe: nothing restarts a start, nor a hang",
        "symptom hiding",
        _fix("    return _pod(_startup(2 * load_time_seconds), '')\n"),
        (PROBES, HANG),
    ),
    Cheat(
        288,
        "startupProbe, and liveness delayed past the start as well",
        "symptom hiding",
        _fix(
            "    return _pod(\n"
            "        _startup(2 * load_time_seconds),\n"
            "        _liveness(initialDelaySeconds=math.ceil(2 * load_time_seconds)),\n"
            "    )\n"
        ),
        (SHORT, HANG),
    ),
    Cheat(
        288,
        "startupProbe, and a tcpSocket liveness that connects while the server hangs",
        "symptom hiding",
        _fix(
            "    return _pod(\n"
            "        _startup(2 * load_time_seconds),\n"
            "        _liveness('tcpSocket: {port: http}'),\n"
            "    )\n"
        ),
        (HANG,),
    ),
    Cheat(
        288,
        "startupProbe whose failureThreshold never restarts a stuck start",
        "symptom hiding",
        _fix("    return _pod(_startup(100_000), _liveness())\n"),
        (BUDGET,),
    ),
    Cheat(
        288,
        "initialDelaySeconds on liveness instead of a startupProbe (the classic answer)",
        "debrief bypass",
        _fix(
            "    return _pod('', _liveness(initialDelaySeconds=math.ceil(2 * load_time_seconds)))\n"
        ),
        (PROBES, READY),
    ),
    Cheat(
        288,
        "a liveness failureThreshold high enough to outlast the load, no startupProbe",
        "debrief bypass",
        _fix(
            "    threshold = math.ceil(2 * load_time_seconds / 10)\n"
            "    return _pod('', _liveness(failureThreshold=threshold))\n"
        ),
        (PROBES, SHORT),
    ),
    Cheat(
        288,
        "the classic 30 x 10 s startupProbe, whatever the load",
        "debrief bypass",
        _fix("    return _pod(_startup(300, period=10), _liveness())\n"),
        (BUDGET,),
    ),
    Cheat(
        288,
        "slowest start counted from the first log line, not from startedAt",
        "debrief bypass",
        (
            "from datetime import datetime\n\n\n"
            "def slowest_start_s(starts):\n"
            "    def at(stamp):\n"
            "        return datetime.fromisoformat(stamp[:26] + '+00:00').timestamp()\n\n"
            "    out = []\n"
            "    for s in starts:\n"
            "        stamps = [(at(x.split(' ', 1)[0]), x.split(' ', 1)[1]) for x in s['logs']]\n"
            "        served = next(t for t, text in stamps if text.startswith('listening on'))\n"
            "        out.append(served - stamps[0][0])\n"
            "    return max(out)\n",
        ),
        DIAGNOSIS,
    ),
]
