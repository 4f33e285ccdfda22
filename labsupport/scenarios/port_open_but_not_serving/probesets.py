"""The probes of a model-server pod as Kubernetes probe specs: the incident's, the classic
answer's, and probes built from your own liveness and readiness functions.

    >>> from labsupport.scenarios.port_open_but_not_serving import probesets
    >>> print(probesets.INCIDENT.describe())
    startup:   http-get http://:8000/health delay=0s timeout=1s period=2s #success=1 #failure=300
    liveness:  tcp-socket :8000 delay=0s timeout=1s period=10s #success=1 #failure=3
    readiness: http-get http://:8000/health delay=0s timeout=1s period=5s #success=1 #failure=3
    >>> mine = probesets.from_functions(lambda prev, now: now.ok, lambda prev, now: now.ok)
    >>> mine.liveness.handler.describe()
    'call liveness()'

Periods and thresholds are manifest seconds, played 10x faster (`TIMING`: 1 manifest second
= 0.1 s); probe *timeouts* stay real seconds (1 s), because a deadline on a real HTTP exchange
cannot be scaled. `from_functions(liveness, readiness)` wraps two functions
`f(previous, current) -> bool` over `Scrape`s of /metrics: at every probe the prober scrapes
/metrics with a deadline just under the probe's timeout, calls the function with the previous
scrape of the same container (None at first) and this one, and keeps this one for next time.
A function that raises, or returns anything but True, fails the probe.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

import httpx

from labsupport.k8s.events import Timing
from labsupport.k8s.probes import Call, HTTPGet, Probe, ProbeTarget, TCPSocket
from labsupport.k8s.spec import PodSpec, Port
from labsupport.serving.scrape import Scrape, scrape_metrics

CONTAINER_PORT = 8000
MAX_NUM_SEQS = 32  # requests the server runs at once; more wait in its queue
STEP_MS = 20.0  # each engine step takes at least this long (a stand-in for GPU time per step)
SERVER_ARGS = ("--min-step-ms", f"{STEP_MS:g}", "--max-num-seqs", str(MAX_NUM_SEQS))
TIMING = Timing(time_scale=0.1, min_probe_timeout_s=1.0)
GRACE_SECONDS = 5  # terminationGracePeriodSeconds (manifest): a stuck server is SIGKILLed soon

STARTUP = Probe(
    HTTPGet("/health", CONTAINER_PORT), period_seconds=2, timeout_seconds=1, failure_threshold=300
)


def liveness_probe(handler) -> Probe:
    return Probe(handler, period_seconds=10, timeout_seconds=1, failure_threshold=3)


def readiness_probe(handler) -> Probe:
    return Probe(handler, period_seconds=5, timeout_seconds=1, failure_threshold=3)


@dataclass(frozen=True)
class ProbeSet:
    """Startup, liveness and readiness probes of one pod design."""

    name: str
    liveness: Probe
    readiness: Probe
    startup: Probe = STARTUP

    def pod_spec(self, *server_args: str, device: str = "auto") -> PodSpec:
        """The model server as a one-container pod with these probes."""
        command = [
            sys.executable, "-m", "labsupport.serving.serve_cli", "--port", "$(PORT)",
            "--device", device, *SERVER_ARGS, *server_args,
        ]  # fmt: skip
        return PodSpec(
            command=command,
            name="server",
            ports=[Port(CONTAINER_PORT, "http")],
            startup_probe=self.startup,
            liveness_probe=self.liveness,
            readiness_probe=self.readiness,
            termination_grace_period_seconds=GRACE_SECONDS,
        )

    def describe(self) -> str:
        return "\n".join(
            f"{kind + ':':<10} {getattr(self, kind).describe()}"
            for kind in ("startup", "liveness", "readiness")
        )


@dataclass(eq=False)
class ScrapeCheck:
    """A probe handler (for `Call`) that scrapes /metrics and asks `fn(previous, current)`."""

    fn: object
    name: str
    timeout_s: float = 0.9  # under the probe's 1 s timeout: the scrape always ends first
    history: list = field(default_factory=list)  # (time.monotonic(), verdict, Scrape)

    def __post_init__(self):
        self._previous: dict[int, tuple[ProbeTarget, Scrape]] = {}
        self._lock = threading.Lock()

    def __call__(self, target: ProbeTarget):
        now = scrape_metrics(target.url("/", CONTAINER_PORT).rstrip("/"), self.timeout_s)
        with self._lock:  # one entry per container run: the kubelet makes a new target for each
            kept = self._previous.get(id(target))
            previous = kept[1] if kept is not None and kept[0] is target else None
            self._previous[id(target)] = (target, now)
        verdict = self.fn(previous, now)
        self.history.append((time.monotonic(), verdict is True, now))
        if not isinstance(verdict, bool):
            return False, f"{self.name}() returned {verdict!r}, not True or False"
        return verdict, f"{self.name}(): {verdict} ({now.describe()})"


def from_functions(liveness, readiness=None, name: str = "yours") -> ProbeSet:
    """Probes that call `liveness(previous, current)` and `readiness(previous, current)`.

    readiness=None keeps an httpGet /health readiness probe (to judge a liveness alone).
    """
    return ProbeSet(
        name,
        liveness_probe(Call(ScrapeCheck(liveness, "liveness"), "liveness")),
        readiness_probe(
            HTTPGet("/health", CONTAINER_PORT)
            if readiness is None
            else Call(ScrapeCheck(readiness, "readiness"), "readiness")
        ),
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
