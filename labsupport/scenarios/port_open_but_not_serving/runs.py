"""A supervised model-server pod through loads and faults, its probes acting on it.

    >>> from labsupport.scenarios.port_open_but_not_serving import probesets, runs, variant
    >>> run = runs.run_fault("wedged_engine", probesets.INCIDENT, variant(0), window_s=4)
    >>> run.verdicts["wedged_engine"].what      # ~10 s: tcpSocket liveness, the port answers
    'never restarted in 4 s and still Ready: traffic keeps going to it'

Each run starts the real server (`labsupport.serving`, the variant's capacity and step pace) as a
pod of `labsupport.k8s` with the given probes (kubelet semantics: periods, timeouts, failure
thresholds, restarts, back-off), waits until it is Ready, sends the variant's light traffic,
then:

- `run_fault(fault, probes, variant)`: switches a server fault on at run time
  (`POST /admin/fault`, with the run's admin token) and watches for `window_s` seconds, or
  until the liveness probe has restarted the container and it is Ready again;
- `run_loads(probes, variant)`: idle, light traffic, the daily peak (`variant.peak` clients for
  a server that runs `variant.capacity` at once: a batch waits), a retry storm
  (`variant.overload` clients) through a gateway with `gateway_limit` (None: no limit), then the
  storm stops and what was admitted drains; `then_fault` switches a fault on afterwards.

In a fault run, light traffic sends short requests (`LIGHT_MAX_TOKENS`) and gives up after
`GATEWAY_TIMEOUT_S` (a gateway's 504). `shadows`
are probes that watch the same pod and act on nothing: a shadow readiness shows when that probe
would have taken the pod out of the Service, a shadow liveness when it would have restarted it.
`evidence=True` also gathers what an on-call engineer sees during the fault (`evidence`). A run
returns a `PodRun`: the pod's timeline, one `View` per design, a `Verdict` per scenario.
Everything is stopped when it returns.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field

import httpx

from labsupport import progress
from labsupport.k8s.pod import Pod
from labsupport.k8s.probes import Probe, ProbeWorker
from labsupport.scenarios.port_open_but_not_serving import probesets
from labsupport.scenarios.port_open_but_not_serving.gateway import Gateway
from labsupport.scenarios.port_open_but_not_serving.timeline import FAULTS, LOADS, View, judge
from labsupport.serving.admin import new_token, post_fault, token_env
from labsupport.serving.load import SteadyLoad

GATEWAY_TIMEOUT_S = 2.0
LIGHT_MAX_TOKENS = 16  # short requests in fault runs: served well within the gateway's timeout
START_S = 6.0  # a typical start on a 2-core machine, for the progress bars
START_TIMEOUT_S = 90.0  # a cold start on a busy machine (torch import, weights, warm-up)
READY_TIMEOUT_S = 10.0  # a started, idle, healthy server that is not Ready by then never will be
# seconds of each load phase, by scale (the suite's run is shorter); the peak lasts long enough
# for a 1-token readiness probe to miss its deadline three times behind a batch
PHASES_S = {
    "full": {"idle": 2.0, "light": 2.0, "heavy_load": 6.0, "overload": 4.0, "drain": 1.0},
    "suite": {"idle": 1.5, "light": 1.5, "heavy_load": 5.0, "overload": 3.5, "drain": 1.0},
    # the checks judge only the pod's own probes: no shadow needs the peak to last
    "check": {"idle": 1.0, "light": 1.0, "heavy_load": 3.0, "overload": 3.0, "drain": 1.0},
}


class ScenarioError(RuntimeError):
    """The server did not start: nothing about the probes can be judged."""


@dataclass
class Shadow:
    """A probe that watches the pod without acting; kind: 'liveness' or 'readiness'."""

    name: str  # the probe design it belongs to, e.g. probesets.CLASSIC.name
    kind: str
    probe: Probe


def classic_shadows() -> list[Shadow]:
    return [
        Shadow(probesets.CLASSIC.name, "liveness", probesets.CLASSIC.liveness),
        Shadow(probesets.CLASSIC.name, "readiness", probesets.CLASSIC.readiness),
    ]


@dataclass
class PodRun:
    """One pod's story: times in seconds since the pod was created."""

    probes: str
    scenarios: tuple[str, ...]
    phases: dict = field(default_factory=dict)  # name -> (start, end)
    ready: list = field(default_factory=list)  # (t, ready) changes of the pod
    kills: list = field(default_factory=list)  # (t, "liveness"|"startup") probe kills
    starts: list = field(default_factory=list)  # t of each container start
    unhealthy: list = field(default_factory=list)  # (t, kind, message) failed probes
    shadow_results: dict = field(default_factory=dict)  # (name, kind) -> [(t, ok, state)]
    requests: list = field(default_factory=list)  # (start t, latency s, status, load name)
    traffic: dict = field(default_factory=dict)  # phase -> shed, served, p50_s, in_flight_max
    queue_bound: int | None = None  # in flight at the replica that keeps a storm's queue short
    gateway: str = ""  # what the gateway did
    never_ready: bool = False
    views: dict = field(default_factory=dict)  # probe design -> View
    verdicts: dict = field(default_factory=dict)  # scenario -> Verdict (the pod's own probes)
    shadow_verdicts: dict = field(default_factory=dict)  # design -> {scenario: Verdict}
    shadows_from: float = 0.0  # when the shadows had all probed once
    logs: str = ""
    describe: str = ""  # `kubectl describe pod` at the end of the run
    device: str = ""  # where the engine ran ("cpu", "cuda"), as the server printed it
    evidence: object = None  # evidence.Evidence gathered during the fault, when asked

    def served(self, t0: float, t1: float) -> dict:
        """Requests that started in [t0, t1): served, failed, median latency of the served."""
        rs = [(d, s) for t, d, s, _ in self.requests if t0 <= t < t1]
        ok = sorted(d for d, s in rs if s == "ok")
        p50 = ok[len(ok) // 2] if ok else None
        return {"served": len(ok), "failed": len(rs) - len(ok), "p50_s": p50}

    @property
    def restarts(self) -> int:
        return max(0, len(self.starts) - 1)


def phase_traffic(requests: list, t0: float, t1: float) -> dict:
    """Requests that started in [t0, t1): shed by the gateway, served, median latency served."""
    rs = [(d, s) for t, d, s, _ in requests if t0 <= t < t1]
    ok = sorted(d for d, s in rs if s == "ok")
    return {
        "shed": sum(s == "http_429" for _, s in rs),
        "served": len(ok),
        "p50_s": ok[len(ok) // 2] if ok else None,
    }


class _Recorder:
    def __init__(self, run: PodRun):
        self.run, self.t0 = run, time.monotonic()
        self._last_ready: bool | None = False  # the pod starts not Ready

    def now(self) -> float:
        return time.monotonic() - self.t0

    def on_change(self, pod: Pod) -> None:
        if pod.ready != self._last_ready:
            self._last_ready = pod.ready
            self.run.ready.append((self.now(), pod.ready))

    def on_event(self, event) -> None:
        t = self.now()
        if event.reason == "Started":
            self.run.starts.append(t)
        elif event.reason == "Killing" and "failed" in event.message:
            kind = "startup" if "startup probe" in event.message else "liveness"
            self.run.kills.append((t, kind))
        elif event.reason == "Unhealthy":
            kind, _, message = event.message.partition(" probe failed: ")
            self.run.unhealthy.append((t, kind.lower(), message))


class _Session:
    """The pod under test, its recorder, and the shadows watching it."""

    def __init__(self, pod: Pod, run: PodRun, rec: _Recorder, admin_token: str):
        self.pod, self.run, self.rec = pod, run, rec
        self.admin_token = admin_token  # the server's /admin token, handed over in its env
        self.workers: list[ProbeWorker] = []
        self.loads: list[SteadyLoad] = []

    @property
    def base_url(self) -> str:
        return self.pod.target().url("/", probesets.CONTAINER_PORT).rstrip("/")

    def start_shadows(self, shadows: list[Shadow], timeout_s: float = 5.0) -> None:
        """Start watching; return once each shadow has probed once (or after timeout_s)."""
        for s in shadows:
            results = self.run.shadow_results.setdefault((s.name, s.kind), [])
            self.workers.append(_shadow(s, self.pod, self.rec, results).start())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(self.run.shadow_results.values()):
            time.sleep(0.05)
        self.run.shadows_from = self.rec.now()

    def load(self, name: str, clients: int, variant, **kwargs) -> SteadyLoad:
        kwargs.setdefault("max_tokens", variant.max_tokens)
        load = SteadyLoad(self.base_url, concurrency=clients, name=name, **kwargs)
        self.loads.append(load)
        return load

    def fault(self, name: str, variant, enabled: bool = True):
        value = variant.fault_value(name) if enabled else None

        def send():
            with contextlib.suppress(httpx.HTTPError):
                post_fault(self.base_url, self.admin_token, name, value, enabled=enabled,
                           timeout_s=20.0)  # fmt: skip

        thread = threading.Thread(target=send, name=f"srelab-fault-{name}", daemon=True)
        thread.start()
        return thread


@contextlib.contextmanager
def _supervised(probes: probesets.ProbeSet, variant, scenarios, echo, device: str = "auto"):
    run = PodRun(probes.name, tuple(scenarios))
    rec = _Recorder(run)
    run.ready.append((0.0, False))
    token = new_token()
    spec = probes.pod_spec(variant.server_args(), device=device).with_env(**token_env(token))
    pod = Pod("llm-0", spec, timing=probesets.TIMING, on_event=rec.on_event,
              on_change=rec.on_change)  # fmt: skip
    session = _Session(pod, run, rec, token)
    try:
        pod.start()
        if not pod.wait_for(lambda p: p.started or p.done.is_set(), START_TIMEOUT_S):
            raise ScenarioError(f"the server did not start in {START_TIMEOUT_S:.0f} s")
        if not pod.started:
            raise ScenarioError("the server exited before it started serving")
        if not pod.wait_ready(READY_TIMEOUT_S):
            run.never_ready = True
        run.device = _device(pod.logs())  # the first container printed it before listening
        if echo:
            echo(f"[{rec.now():5.1f} s] {pod.name} started" + (
                ", never Ready" if run.never_ready else " and Ready"))  # fmt: skip
        yield session
    finally:
        for w in session.workers:
            w.stop(join=False)
        for load in session.loads:
            load.stop()
        run.requests = sorted(
            (o.start_s - rec.t0, o.latency_s, o.status, load.name)
            for load in session.loads
            for o in load.outcomes
        )
        run.logs = pod.logs() if pod.container is not None else ""
        run.describe = pod.describe()
        run.device = run.device or _device(run.logs)
        pod.close()
        for w in session.workers:
            w.stop()
        _finish(run)


def _device(logs: str) -> str:
    for line in logs.splitlines():
        if line.startswith("startup {"):
            with contextlib.suppress(ValueError):
                return str(json.loads(line[len("startup ") :]).get("device", ""))
    return ""


def _shadow(s: Shadow, pod: Pod, rec: _Recorder, results: list) -> ProbeWorker:
    def on_result(kind, result, value, changed):
        results.append((rec.now(), result.ok, value))
        return True

    started = time.monotonic()
    return ProbeWorker(s.kind, s.probe, pod.target(), probesets.TIMING, started, on_result)


def _finish(run: PodRun) -> None:
    for phase in ("healthy", "heavy_load", "overload"):
        if phase in run.phases:
            run.traffic.setdefault(phase, {}).update(
                phase_traffic(run.requests, *run.phases[phase]), queue_bound=run.queue_bound
            )
    run.views[run.probes] = View(list(run.ready), [t for t, kind in run.kills if kind])
    for (name, kind), results in run.shadow_results.items():
        view = run.views.setdefault(name, View([], []))
        if kind == "readiness":
            last = None
            for t, _ok, state in results:
                if state != last:
                    view.ready.append((t, bool(state)))
                    last = state
        else:  # the first time the shadow liveness reached its failure threshold
            kill = next((t for t, _ok, state in results if state is False), None)
            view.kills = [] if kill is None else [kill]
    for name, view in run.views.items():
        shadowed = {k for n, k in run.shadow_results if n == name}
        if name != run.probes and "readiness" not in shadowed:
            view.ready = list(run.ready)  # no shadow readiness: the pod's own
        phases = dict(run.phases)
        if name != run.probes and "healthy" in phases:  # a shadow judges only what it watched
            h0, h1 = phases["healthy"]
            phases["healthy"] = (max(h0, run.shadows_from), h1)
        verdicts = {
            s: judge(s, view, phases, run.traffic) for s in run.scenarios if _judgeable(s, run)
        }
        if name == run.probes:
            run.verdicts = verdicts
        else:
            run.shadow_verdicts[name] = verdicts


def _judgeable(scenario: str, run: PodRun) -> bool:
    needs = {"overload": ("overload", "drain")}.get(scenario, (scenario,))
    if scenario in FAULTS:
        needs = ("fault",)
    return all(p in run.phases for p in needs)


def _watch_fault(session: _Session, fault: str, variant, window_s: float, until_recovered: bool,
                 evidence: bool, echo) -> None:  # fmt: skip
    pod, run, rec = session.pod, session.run, session.rec
    t_fault = rec.now()
    if echo:
        echo(f"[{t_fault:5.1f} s] the fault starts")
    sender = session.fault(fault, variant)
    end = t_fault + window_s
    if evidence and pod.pid is not None:
        from labsupport.scenarios.port_open_but_not_serving.evidence import gather

        time.sleep(1.0)  # let it bite
        run.evidence = gather(session.base_url, pod.pid, ticks=4)
    while rec.now() < end:
        killed = [t for t, _ in run.kills if t >= t_fault]
        restarted = killed and any(t > killed[0] for t in run.starts)
        if until_recovered and restarted and pod.ready:
            end = rec.now()
            break
        time.sleep(0.05)
    run.phases["fault"] = (t_fault, end)
    if echo:
        echo(f"[{rec.now():5.1f} s] end: {len(run.kills)} probe kill(s), "
             f"{'Ready' if pod.ready else 'not Ready'}")  # fmt: skip
    sender.join(0.1)


def run_fault(
    fault: str,
    probes: probesets.ProbeSet,
    variant,
    *,
    window_s: float = 10.0,
    until_recovered: bool = True,
    shadows: list[Shadow] | None = None,
    evidence: bool = False,
    device: str = "auto",
    echo=None,
) -> PodRun:
    """Switch `fault` on in a Ready pod under light traffic and watch what its probes do.

    The run ends `window_s` after the fault, or earlier once the liveness probe has restarted
    the container and it is Ready again (`until_recovered`; shadows need the full window).
    """
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    expected_s = START_S + variant.fault_after_s + window_s
    with (
        progress.timed(expected_s, "pod run"),
        _supervised(probes, variant, [fault], echo, device) as session,
    ):
        if session.run.never_ready:
            return session.run
        session.start_shadows(shadows or [])
        session.load(
            "light", variant.light, variant, request_timeout_s=GATEWAY_TIMEOUT_S,
            max_tokens=LIGHT_MAX_TOKENS,
        ).start()  # fmt: skip
        time.sleep(variant.fault_after_s)
        recover = until_recovered and not shadows and not evidence
        _watch_fault(session, fault, variant, window_s, recover, evidence, echo)
    return session.run


def run_loads(
    probes: probesets.ProbeSet,
    variant,
    *,
    gateway_limit: int | None = None,
    shadows: list[Shadow] | None = None,
    then_fault: str | None = None,
    window_s: float = 10.0,
    until_recovered: bool = True,
    scale: str = "full",
    device: str = "auto",
    echo=None,
) -> PodRun:
    """Idle, light, peak and storm phases on one Ready pod; then, optionally, a fault."""
    seconds = PHASES_S[scale]
    scenarios = LOADS + ((then_fault,) if then_fault else ())
    expected_s = START_S + sum(seconds.values()) + (window_s if then_fault else 0.0)
    with (
        progress.timed(expected_s, "pod under load"),
        _supervised(probes, variant, scenarios, echo, device) as session,
    ):
        run, rec = session.run, session.rec
        if run.never_ready:
            return run
        gate = Gateway(gateway_limit)

        def phase(name: str) -> None:
            t0 = rec.now()
            if echo:
                echo(f"[{t0:5.1f} s] {name.replace('_', ' ')}")
            time.sleep(seconds[name])
            run.phases[name] = (t0, rec.now())

        t_idle = rec.now()
        time.sleep(seconds["idle"])
        # shadows start with the traffic: a 1-token probe is itself traffic, and the idle
        # phase must stay idle for the pod's own probes
        session.start_shadows(shadows or [])
        session.load("light", variant.light, variant, gate=gate).start()
        phase("light")
        run.phases["healthy"] = (t_idle, run.phases["light"][1])
        heavy = session.load("heavy", variant.peak - variant.light, variant, gate=gate).start()
        phase("heavy_load")
        storm = variant.overload - variant.peak
        over = session.load("overload", storm, variant, gate=gate).start()
        phase("overload")
        t_drain = rec.now()
        over.stop()  # the storm ends (the server aborts what it held)
        heavy.stop()
        time.sleep(seconds["drain"])
        run.phases["drain"] = (t_drain, rec.now())
        run.gateway = gate.describe()
        run.queue_bound = 3 * variant.capacity  # running, and two batches waiting
        for name in ("heavy_load", "overload"):
            a, b = run.phases[name]
            run.traffic[name] = {"in_flight_max": gate.max_in_flight(rec.t0 + a, rec.t0 + b)}
        if then_fault:
            recover = until_recovered and not shadows
            _watch_fault(session, then_fault, variant, window_s, recover, False, echo)
    return run
