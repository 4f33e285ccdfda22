"""Faults and loads against a supervised model-server pod whose probes act.

    >>> from labsupport.scenarios.port_open_but_not_serving import probesets, runs
    >>> run = runs.run_fault("wedged_engine", probesets.INCIDENT, window_s=4)  # ~10 s
    >>> run.verdicts["wedged_engine"].what       # tcpSocket liveness: the port still answers
    'never restarted in 4 s and still Ready: traffic keeps going to it'

Each run starts the real server (`labsupport.serving`) as a pod of `labsupport.k8s` with the
given probes (kubelet semantics: periods, timeouts, failure thresholds, restarts), waits until
it is Ready, sends light traffic, then:

- `run_fault(fault, probes)`: switches a fault on at run time (`POST /admin/fault`) and watches
  for `window_s` seconds (or until the pod was restarted and is Ready again);
- `run_loads(probes)`: idle, light load, heavy load (64 clients for a server that runs 32
  requests at a time: ~32 wait), overload (224 clients: ~190 wait), then the overload stops.

`shadows` are extra probes that watch the same pod and act on nothing: a shadow readiness
shows when that probe would have taken the pod out of the Service, a shadow liveness when it
would have restarted it. The result holds the pod's timeline, one `View` per probe design
and a `Verdict` per scenario (see `timeline`). Everything is stopped when a run returns.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field

import httpx

from labsupport.k8s.pod import Pod
from labsupport.k8s.probes import Probe, ProbeWorker
from labsupport.scenarios.port_open_but_not_serving import probesets
from labsupport.scenarios.port_open_but_not_serving.timeline import FAULTS, LOADS, View, judge
from labsupport.serving.admin import new_token, post_fault, token_env
from labsupport.serving.load import SteadyLoad

FAULT_VALUES = {"gil_busy_loop": 2000.0, "blocked_event_loop": 10.0, "wedged_engine": None}
LIGHT = {"concurrency": 2, "max_tokens": 16}
GATEWAY_TIMEOUT_S = 2.0  # in fault runs the light clients give up like a gateway (a 504)
HEAVY = {"concurrency": 64, "max_tokens": 96}
OVERLOAD_EXTRA = {"concurrency": 160, "max_tokens": 96}  # on top of HEAVY: 224 clients
START_TIMEOUT_S = 90.0  # a cold start on a busy machine (torch import, weights, warm-up)
READY_TIMEOUT_S = 10.0  # a started, idle, healthy server that is not Ready by then never will be


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


def inference_shadow() -> list[Shadow]:
    return [Shadow(probesets.CLASSIC.name, "readiness", probesets.CLASSIC.readiness)]


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
    loads: dict = field(default_factory=dict)  # phase -> outcome counts
    requests: list = field(default_factory=list)  # light traffic: (start t, latency s, status)
    never_ready: bool = False
    views: dict = field(default_factory=dict)  # probe design -> View
    verdicts: dict = field(default_factory=dict)  # scenario -> Verdict (the pod's own probes)
    shadow_verdicts: dict = field(default_factory=dict)  # design -> {scenario: Verdict}
    shadows_from: float = 0.0  # when the shadows had all probed once
    logs: str = ""
    describe: str = ""  # `kubectl describe pod` at the end of the run
    device: str = ""  # where the engine ran ("cpu", "cuda"), as the server printed it

    def traffic(self, t0: float, t1: float) -> dict:
        """Requests that started in [t0, t1): served, failed, median latency of the served."""
        rs = [(d, s) for t, d, s in self.requests if t0 <= t < t1]
        ok = sorted(d for d, s in rs if s == "ok")
        p50 = ok[len(ok) // 2] if ok else None
        return {"served": len(ok), "failed": len(rs) - len(ok), "p50_s": p50}

    @property
    def restarts(self) -> int:
        return max(0, len(self.starts) - 1)

    def first(self, phase: str) -> float:
        return self.phases[phase][0]


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

    def __init__(self, pod: Pod, run: PodRun, rec: _Recorder, admin_token: str | None = None):
        self.pod, self.run, self.rec = pod, run, rec
        self.admin_token = admin_token  # the server's /admin token, handed over in its env
        self.workers: list[ProbeWorker] = []

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


@contextlib.contextmanager
def _supervised(probes: probesets.ProbeSet, scenarios, echo):
    run = PodRun(probes.name, tuple(scenarios))
    rec = _Recorder(run)
    run.ready.append((0.0, False))
    token = new_token()
    pod = Pod(
        "llm-0",
        probes.pod_spec().with_env(**token_env(token)),
        timing=probesets.TIMING,
        on_event=rec.on_event,
        on_change=rec.on_change,
    )
    session = _Session(pod, run, rec, token)
    try:
        pod.start()
        if not pod.wait_for(lambda p: p.started or p.done.is_set(), START_TIMEOUT_S):
            raise ScenarioError(f"the server did not start in {START_TIMEOUT_S:.0f} s")
        if not pod.started:
            raise ScenarioError("the server exited before it started serving")
        if not pod.wait_ready(READY_TIMEOUT_S):
            run.never_ready = True
        if echo:
            echo(f"[{rec.now():5.1f} s] {pod.name} started" + (
                ", never Ready" if run.never_ready else " and Ready"))  # fmt: skip
        yield session
    finally:
        for w in session.workers:
            w.stop(join=False)
        run.logs = pod.logs() if pod.container is not None else ""
        run.describe = pod.describe()
        run.device = _device(run.logs)
        pod.close()
        for w in session.workers:
            w.stop()
        _finish(run)


def _requests(load: SteadyLoad, rec: _Recorder) -> list:
    return [(o.start_s - rec.t0, o.latency_s, o.status) for o in load.outcomes]


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
        if name != run.probes and not any(k == "readiness" for n, k in run.shadow_results
                                          if n == name):  # fmt: skip
            view.ready = list(run.ready)  # no shadow readiness: the pod's own
        phases = dict(run.phases)
        if name != run.probes and "healthy" in phases:  # a shadow judges only what it watched
            h0, h1 = phases["healthy"]
            phases["healthy"] = (max(h0, run.shadows_from), h1)
        verdicts = {s: judge(s, view, phases) for s in run.scenarios if _judgeable(s, run)}
        if name == run.probes:
            run.verdicts = verdicts
        else:
            run.shadow_verdicts[name] = verdicts


def _judgeable(scenario: str, run: PodRun) -> bool:
    needs = {"overload": ("overload", "drain")}.get(scenario, (scenario,))
    if scenario in FAULTS:
        needs = ("fault",)
    return all(p in run.phases for p in needs)


def _post_fault(
    base_url: str, name: str, value: float | None, enabled: bool = True, token: str | None = None
):
    def send():
        with contextlib.suppress(httpx.HTTPError):
            post_fault(base_url, token, name, value, enabled=enabled, timeout_s=20.0)

    thread = threading.Thread(target=send, name=f"srelab-fault-{name}", daemon=True)
    thread.start()
    return thread


def run_fault(
    fault: str,
    probes: probesets.ProbeSet,
    *,
    window_s: float = 10.0,
    pre_s: float = 2.0,
    until_recovered: bool = True,
    shadows: list[Shadow] | None = None,
    value: float | None = None,
    echo=None,
) -> PodRun:
    """Switch `fault` on in a Ready pod under light load and watch what its probes do.

    The run ends `window_s` after the fault, or earlier once the liveness probe has restarted
    the container and it is Ready again (`until_recovered`; shadows need the full window).
    """
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    value = FAULT_VALUES[fault] if value is None else value
    with _supervised(probes, [fault], echo) as session:
        pod, run, rec = session.pod, session.run, session.rec
        if run.never_ready:
            return run
        session.start_shadows(shadows or [])
        base_url = session.base_url
        with SteadyLoad(
            base_url, name="light", request_timeout_s=GATEWAY_TIMEOUT_S, **LIGHT
        ) as light:
            time.sleep(pre_s)
            t_fault = rec.now()
            if echo:
                echo(f"[{t_fault:5.1f} s] fault on: {fault}")
            sender = _post_fault(base_url, fault, value, token=session.admin_token)
            end = t_fault + window_s
            while rec.now() < end:
                killed = [t for t, _ in run.kills if t >= t_fault]
                restarted = killed and any(t > killed[0] for t in run.starts)
                if until_recovered and not shadows and restarted and pod.ready:
                    end = rec.now()
                    break
                time.sleep(0.05)
            run.phases["fault"] = (t_fault, end)
            run.loads["fault"] = light.counts(rec.t0 + t_fault, rec.t0 + end)
            if echo:
                echo(f"[{rec.now():5.1f} s] end: {len(run.kills)} probe kill(s), "
                     f"{'Ready' if pod.ready else 'not Ready'}")  # fmt: skip
        run.requests = _requests(light, rec)
        sender.join(0.1)
    return run


def run_loads(
    probes: probesets.ProbeSet,
    *,
    shadows: list[Shadow] | None = None,
    idle_s: float = 4.0,
    light_s: float = 2.0,
    heavy_s: float = 7.0,
    overload_s: float = 5.0,
    drain_s: float = 5.0,
    echo=None,
) -> PodRun:
    """Idle, light, heavy and overload phases on one Ready pod, then the overload stops."""
    with _supervised(probes, LOADS, echo) as session:
        pod, run, rec = session.pod, session.run, session.rec
        if run.never_ready:
            return run
        url = session.base_url

        def phase(name: str, seconds: float, load: SteadyLoad | None = None) -> None:
            t0 = rec.now()
            if echo:
                echo(f"[{t0:5.1f} s] {name}")
            time.sleep(seconds)
            run.phases[name] = (t0, rec.now())
            if load is not None:
                run.loads[name] = load.counts(rec.t0 + t0, rec.t0 + rec.now())

        t_idle = rec.now()
        time.sleep(idle_s)
        with SteadyLoad(url, name="light", **LIGHT) as light:
            # shadows start with the traffic: a 1-token probe is itself traffic, and the idle
            # phase must stay idle for the pod's own probes
            session.start_shadows(shadows or [])
            phase("light", light_s, light)
            run.phases["healthy"] = (t_idle, run.phases["light"][1])
            heavy = SteadyLoad(url, name="heavy", **HEAVY).start()
            over = SteadyLoad(url, name="overload", **OVERLOAD_EXTRA)
            try:
                phase("heavy_load", heavy_s, heavy)
                over.start()
                phase("overload", overload_s, heavy)
            finally:
                over.stop()
                heavy.stop()
            t_drain = rec.now()
            end = t_drain + drain_s
            while rec.now() < end and not (pod.ready and rec.now() > t_drain + 0.5):
                time.sleep(0.05)
            run.phases["drain"] = (t_drain, rec.now())
        run.requests = sorted(_requests(light, rec) + _requests(heavy, rec) + _requests(over, rec))
    return run
