"""Wrong submissions for lab 278 (the port answers but nothing is served) that must fail.

Each is the solution with one exercise replaced. Each fails a check that needs no workload (the
evidence or scrapes written by hand, the manifest, the gateway bounds): those cases were built
against exactly these near misses, so the corpus costs seconds, not pod runs. The live checks
judge the same mechanisms on real pods; the scenario's timeline tests cover their verdicts on a
readiness that sheds a storm and a gateway without a limit.
"""

from tests.cheats.corpus import Cheat

WRITTEN = "test_diagnosis_reads_written_evidence"
LOGIC = "test_probe_logic_on_written_scrapes"
MANIFEST = "test_manifest_serves_the_probes_within_the_slos"
GATEWAY = "test_gateway_limit_admits_the_peak_and_bounds_the_queue"

NUMBERS = """
def _numbers(evidence):
    ok = [s for s in evidence.scrapes if s.ok]
    name = "vllm:iteration_tokens_total_count"
    steps = ok[-1].value(name) - ok[0].value(name) if len(ok) >= 2 else None
    (t0, _, r0), (t1, _, r1) = evidence.cpu[0], evidence.cpu[-1]
    return steps, (r1 - r0) / (t1 - t0)
"""

HARD_CODED = (
    NUMBERS
    + """
def diagnose(evidence):
    steps, cores = _numbers(evidence)
    return {"cause": "engine", "steps": steps, "cores": cores}  # the default incident's answer
"""
)

PACKAGE_HELPER = (
    NUMBERS
    + """
from labsupport.scenarios import port_open_but_not_serving as _scenario


def diagnose(evidence):
    steps, cores = _numbers(evidence)
    return {"cause": _scenario.variant(0).cause, "steps": steps, "cores": cores}
"""
)

FAILING_COMPLETION = (
    NUMBERS
    + """
def diagnose(evidence):
    steps, cores = _numbers(evidence)
    if all(h is None for h in evidence.health):
        cause = "gil" if cores >= 0.5 else "event_loop"
    else:  # a completion that times out "means" the engine is stuck: the peak says otherwise
        cause = "engine" if not any(evidence.completion) else "none"
    return {"cause": cause, "steps": steps, "cores": cores}
"""
)

ON_CPU_NOT_RUNNABLE = (
    NUMBERS
    + """
def diagnose(evidence):
    steps, cores = _numbers(evidence)
    (t0, c0, _), (t1, c1, _) = evidence.cpu[0], evidence.cpu[-1]
    busy = (c1 - c0) / (t1 - t0)  # time on a CPU: low on a crowded machine even when spinning
    if sum(h is not None for h in evidence.health) * 2 < len(evidence.health):
        cause = "gil" if busy >= 0.5 else "event_loop"
    else:
        ok = [s for s in evidence.scrapes if s.ok]
        pending = [s.value("vllm:num_requests_running") + s.value("vllm:num_requests_waiting")
                   for s in ok]
        cause = "engine" if len(ok) >= 2 and min(pending) > 0 and steps == 0 else "none"
    return {"cause": cause, "steps": steps, "cores": cores}
"""
)

ALWAYS_ALIVE = """
def liveness(previous, current):
    return True  # gates nothing
"""

FAULT_MARKER = """
def liveness(previous, current):
    return current.value("srelab:fault_active") != 1.0  # no such metric: no fault is named
"""

HEALTH_SEMANTICS = """
def liveness(previous, current):
    return current.value("srelab:engine_alive") == 1.0  # what /health says: alive, not working
"""

RUNNING_ONLY = """
def liveness(previous, current):
    if current.value("srelab:engine_alive") == 0:
        return False
    if previous is None:
        return True
    steps = "vllm:iteration_tokens_total_count"
    running = min(s.value("vllm:num_requests_running") for s in (previous, current))
    return not (running > 0 and current.value(steps) == previous.value(steps))
"""

QUEUE_READINESS = """
def readiness(previous, current):
    if current.value("srelab:engine_alive") == 0:
        return False
    return current.value("vllm:num_requests_waiting") <= 64  # sheds on load: every replica at once
"""


def _manifest(liveness: str, readiness: str = "httpGet: {path: /readyz, port: http}") -> str:
    return f'''
def pod_manifest(stall_s, restart_within_s):
    return """\\
apiVersion: v1
kind: Pod
metadata:
  name: llm-0
spec:
  containers:
  - name: server
    image: registry.example.com/llm-server:2.3.1
    command: [python, -m, labsupport.serving.serve_cli]
    ports:
    - {{name: http, containerPort: 8000}}
    startupProbe:
      httpGet: {{path: /health, port: http}}
      periodSeconds: 2
      failureThreshold: 300
    livenessProbe:
      {liveness}
    readinessProbe:
      {readiness}
      periodSeconds: 5
      failureThreshold: 2
"""
'''


HUGE_THRESHOLD = _manifest(
    "httpGet: {path: /livez, port: http}\n      periodSeconds: 10\n      failureThreshold: 1000"
)
TIGHT_LIVENESS = _manifest(
    "httpGet: {path: /livez, port: http}\n      periodSeconds: 1\n      failureThreshold: 1"
)
HEALTH_LIVENESS = _manifest(
    "httpGet: {path: /health, port: http}\n      periodSeconds: 10\n      failureThreshold: 3"
)

FIXED_WINDOW = _manifest(
    "httpGet: {path: /livez, port: http}\n      periodSeconds: 10\n      failureThreshold: 3"
)  # right for the default incident's 20 s stall, not for a 30 s one

DEFAULT_LIMIT = """
def gateway_limit(capacity, peak):
    return 80  # right for the default deployment (capacity 32, peak 64) only
"""

NO_LIMIT = """
def gateway_limit(capacity, peak):
    return 10**6  # the incident's gateway: every request queues at the replica
"""

NOTHING_QUEUES = """
def gateway_limit(capacity, peak):
    return capacity  # no request ever waits, and the daily peak gets 429s
"""

CHEATS = [
    Cheat(278, "diagnosis hard-coded to the default incident", "hard-coded", (HARD_CODED,),
          (WRITTEN,)),
    Cheat(278, "diagnosis read from the package's variant", "package helper", (PACKAGE_HELPER,),
          (WRITTEN,)),
    Cheat(278, "a failing 1-token completion means a stuck engine", "debrief bypass",
          (FAILING_COMPLETION,), (WRITTEN,)),
    Cheat(278, "on-CPU time instead of runnable time", "symptom hiding", (ON_CPU_NOT_RUNNABLE,),
          (WRITTEN,)),
    Cheat(278, "liveness always true", "symptom hiding", (ALWAYS_ALIVE,), (LOGIC,)),
    Cheat(278, "liveness reads a fault marker from /metrics", "package helper", (FAULT_MARKER,),
          (LOGIC,)),
    Cheat(278, "liveness is /health's engine-alive", "debrief bypass", (HEALTH_SEMANTICS,),
          (LOGIC,)),
    Cheat(278, "liveness counts running requests only", "hard-coded", (RUNNING_ONLY,), (LOGIC,)),
    Cheat(278, "readiness sheds on the queue length", "debrief bypass", (QUEUE_READINESS,),
          (LOGIC,)),
    Cheat(278, "liveness failureThreshold 1000", "symptom hiding", (HUGE_THRESHOLD,),
          (MANIFEST,)),
    Cheat(278, "liveness 1 s x 1: kills a long prefill", "hard-coded", (TIGHT_LIVENESS,),
          (MANIFEST,)),
    Cheat(278, "liveness probes vLLM's /health", "debrief bypass", (HEALTH_LIVENESS,),
          (MANIFEST,)),
    Cheat(278, "liveness window fixed for the default stall", "hard-coded", (FIXED_WINDOW,),
          (MANIFEST,)),
    Cheat(278, "gateway limit fixed for the default deployment", "hard-coded", (DEFAULT_LIMIT,),
          (GATEWAY,)),
    Cheat(278, "no gateway limit", "symptom hiding", (NO_LIMIT,), (GATEWAY,)),
    Cheat(278, "gateway limit at capacity: nothing queues, the peak is shed", "symptom hiding",
          (NOTHING_QUEUES,), (GATEWAY,)),
]  # fmt: skip
