"""The probes of a model-server pod: the incident's, the classic answer's, and yours.

    >>> from labsupport.scenarios.port_open_but_not_serving import probesets
    >>> print(probesets.INCIDENT.describe())
    startup:   http-get http://:8000/health delay=0s timeout=1s period=2s #success=1 #failure=300
    liveness:  tcp-socket :8000 delay=0s timeout=1s period=10s #success=1 #failure=3
    readiness: http-get http://:8000/health delay=0s timeout=1s period=5s #success=1 #failure=3
    >>> probesets.from_manifest(probesets.INCIDENT_MANIFEST).liveness.handler.describe()
    'tcp-socket :8000'

Periods and thresholds are manifest seconds, played 10x faster (`TIMING`: 1 manifest second =
0.1 s); probe *timeouts* stay real seconds (at least 1 s), because a deadline on a real HTTP
exchange cannot be scaled. `from_manifest(text)` takes the probes (and ports) of a Pod or
Deployment manifest, validated against the Kubernetes schema (`labsupport.k8s.manifests`); the
container's image, command and grace period stay the lab's. `ProbeSet.handlers` are the logic
the server itself runs behind `GET /livez` and `GET /readyz` (`serving.own_probes`), e.g. your
exercise functions as `lab.ref(...)`: a server given learner code runs contained.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import httpx

from labsupport.k8s import manifests
from labsupport.k8s.events import Timing
from labsupport.k8s.probes import Call, HTTPGet, Probe, ProbeTarget, TCPSocket
from labsupport.k8s.spec import PodSpec, Port

CONTAINER_PORT = 8000
TIMING = Timing(time_scale=0.1, min_probe_timeout_s=1.0)
GRACE_SECONDS = 5  # terminationGracePeriodSeconds of the lab's pod: a stuck server is SIGKILLed

STARTUP = Probe(
    HTTPGet("/health", CONTAINER_PORT), period_seconds=2, timeout_seconds=1, failure_threshold=300
)


def liveness_probe(handler) -> Probe:
    return Probe(handler, period_seconds=10, timeout_seconds=1, failure_threshold=3)


def readiness_probe(handler) -> Probe:
    return Probe(handler, period_seconds=5, timeout_seconds=1, failure_threshold=3)


@dataclass(frozen=True)
class ProbeSet:
    """Startup, liveness and readiness probes of one pod design, and what the server runs."""

    name: str
    liveness: Probe
    readiness: Probe
    startup: Probe | None = STARTUP
    ports: tuple = (Port(CONTAINER_PORT, "http"),)
    handlers: dict = field(default_factory=dict)  # "livez"/"readyz" -> fn or ref (own_probes)

    def pod_spec(self, server_args=(), device: str = "auto") -> PodSpec:
        """The model server as a one-container pod with these probes."""
        from labsupport.serving.shutdown import encode_handler

        command = [
            sys.executable, "-m", "labsupport.serving.serve_cli", "--port", "$(PORT)",
            "--device", device, *server_args,
        ]  # fmt: skip
        for endpoint, fn in sorted(self.handlers.items()):
            command += [f"--{endpoint}-handler", fn if isinstance(fn, str) else encode_handler(fn)]
        return PodSpec(
            command=command,
            name="server",
            ports=self.ports,
            startup_probe=self.startup,
            liveness_probe=self.liveness,
            readiness_probe=self.readiness,
            termination_grace_period_seconds=GRACE_SECONDS,
        )

    def with_handlers(self, **handlers) -> ProbeSet:
        """The same probes, the server answering /livez and /readyz with `handlers`
        (functions, `lab.ref(...)`s, or functions defined in this notebook)."""
        sent = {k: as_handler(fn) for k, fn in handlers.items()}
        return ProbeSet(self.name, self.liveness, self.readiness, self.startup, self.ports, sent)

    def describe(self) -> str:
        return "\n".join(
            f"{kind + ':':<10} {getattr(self, kind).describe()}"
            for kind in ("startup", "liveness", "readiness")
            if getattr(self, kind) is not None
        )


def as_handler(fn):
    """`fn` as a server can load it. A function defined in this notebook goes with the exercise
    cells it was defined in (the latest ones in the kernel's history, so helpers defined beside
    it come along), as `check()` sends them; an importable function goes by name."""
    if fn is None or hasattr(fn, "load") or getattr(fn, "__module__", None) != "__main__":
        from labsupport.portable import sendable

        return sendable(fn)
    from labsupport.grading.live import history_cells
    from labsupport.grading.target import ExerciseRef, exercise_names, module_label
    from labsupport.labs import get

    try:
        history = list(get_ipython().user_ns["In"])  # type: ignore[name-defined]  # noqa: F821
    except (NameError, KeyError):
        from labsupport.portable import portable

        return portable(fn)
    names = sorted({*exercise_names(get(278)), fn.__name__})
    return ExerciseRef("\n\n".join(history_cells(history, names)), module_label(278), fn.__name__)


def from_manifest(text, name: str = "yours") -> ProbeSet:
    """The probes and ports of a validated Pod (or Deployment) manifest (ManifestError if not)."""
    spec = manifests.pod_spec(text, command=("lab-server",))
    missing = [k for k in ("liveness_probe", "readiness_probe") if getattr(spec, k) is None]
    if missing:
        raise manifests.ManifestError(
            [f"the container has no {k.replace('_probe', 'Probe')}" for k in missing]
        )
    return ProbeSet(
        name, spec.liveness_probe, spec.readiness_probe, spec.startup_probe, tuple(spec.ports)
    )


@dataclass(eq=False)
class InferenceCheck:
    """A probe handler that sends a real 1-token completion; ok when it returns 200 in time."""

    timeout_s: float = 0.95
    prompt: str = "ping"

    def __call__(self, target: ProbeTarget):
        url = target.url("/v1/completions", CONTAINER_PORT)
        body = {"prompt": self.prompt, "max_tokens": 1, "stream": False}
        t0 = time.monotonic()
        try:
            r = httpx.post(url, json=body, timeout=self.timeout_s, trust_env=False)
        except httpx.TimeoutException:
            return False, f"1-token completion: no answer within {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            return False, f"1-token completion: {type(exc).__name__}"
        ms = (time.monotonic() - t0) * 1e3
        return r.status_code == 200, f"1-token completion: HTTP {r.status_code} in {ms:.0f} ms"


INFERENCE = InferenceCheck()

INCIDENT = ProbeSet(
    "incident: tcpSocket liveness, httpGet /health readiness",
    liveness_probe(TCPSocket(CONTAINER_PORT)),
    readiness_probe(HTTPGet("/health", CONTAINER_PORT)),
)
CLASSIC = ProbeSet(
    "classic answer: httpGet /health liveness, 1-token inference readiness",
    liveness_probe(HTTPGet("/health", CONTAINER_PORT)),
    readiness_probe(Call(INFERENCE, "inference")),
)

INCIDENT_MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: llm-0
  labels: {app: llm-chat}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: server
    image: registry.example.com/llm-server:2.3.1
    command: [python, -m, labsupport.serving.serve_cli, --port, "8000"]
    ports:
    - {name: http, containerPort: 8000}
    startupProbe:          # the model loads before the port opens: up to 600 s
      httpGet: {path: /health, port: 8000}
      periodSeconds: 2
      failureThreshold: 300
    livenessProbe:
      tcpSocket: {port: 8000}
      periodSeconds: 10
      timeoutSeconds: 1
      failureThreshold: 3
    readinessProbe:
      httpGet: {path: /health, port: 8000}
      periodSeconds: 5
      timeoutSeconds: 1
      failureThreshold: 3
"""
