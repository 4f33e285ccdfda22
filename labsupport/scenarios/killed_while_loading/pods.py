"""Lab 288's pods: a manifest run under the supervisor with the slow server, and what it did.

    >>> from labsupport.scenarios.killed_while_loading import pods, starts
    >>> run = pods.run_pod(starts.incident_manifest(), window_s=8)   # doctest: +SKIP
    >>> run.starts, run.ready_s                                    # doctest: +SKIP
    (3, None)

`run_pod` validates the manifest (the real Kubernetes schema), replaces its command with the
server of a `ServerSize`, runs it as a `labsupport.k8s.Pod` (manifest seconds scaled by
`TIME_SCALE`) and records every event, each container run (when its port opened, whether the
kubelet killed it, its start-up phases), readiness and, on request, how long liveness took to
catch a hang injected some time after the pod got ready. It reports what happened; it does
not judge the manifest. Every process is stopped and every temp file removed before it
returns.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from labsupport import isolate, progress
from labsupport.k8s import manifests
from labsupport.k8s.pod import Pod
from labsupport.scenarios.killed_while_loading.starts import (
    INCIDENT,
    TIME_SCALE,
    ServerSize,
    phases_of,
    tcp_connects,
)
from labsupport.serving.admin import admin_headers, new_token, token_env

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


@dataclass
class ContainerRun:
    """One container of the pod (the first start, then each restart); times from pod creation."""

    number: int
    start_s: float
    end_s: float | None = None  # None: still running when the run ended
    exit_code: int | None = None
    port_open_s: float | None = None  # when its port first accepted a connection
    killed_by: str | None = None  # "liveness" | "startup" when the kubelet killed it
    phases: dict = field(default_factory=dict)


@dataclass
class PodRun:
    """What one pod did during a run. Times are real seconds since the pod was created."""

    name: str
    time_scale: float
    window_s: float
    containers: list[ContainerRun]
    events: list[tuple[float, str, str, str]]  # (t_s, type, reason, message), every occurrence
    ready_s: float | None
    restarts_before_ready: int | None
    restart_count: int
    describe: str = ""
    hang_s: float | None = None  # when the hang was injected
    hang_killed_s: float | None = None  # when liveness decided to kill after the hang

    @property
    def starts(self) -> int:
        """Containers started during the run (first start included)."""
        return len(self.containers)

    @property
    def starts_until_ready(self) -> int | None:
        """Containers started until the pod became ready; None if it never did."""
        if self.ready_s is None:
            return None
        return sum(c.start_s <= self.ready_s for c in self.containers)

    @property
    def killed_while_loading(self) -> int:
        """Containers the kubelet killed before their port ever opened."""
        return sum(c.killed_by is not None and c.port_open_s is None for c in self.containers)

    def probe_failures(self, kind: str) -> list[float]:
        """Times of the failures of one probe ("Liveness", "Startup", "Readiness")."""
        tag = f"{kind} probe failed"
        return [t for t, _, reason, msg in self.events if reason == "Unhealthy" and tag in msg]

    def event_times(self, reason: str, contains: str = "") -> list[float]:
        return [t for t, _, r, msg in self.events if r == reason and contains in msg]

    @property
    def hang_detected_seconds(self) -> float | None:
        """Manifest seconds from the hang to liveness killing the container; None if never."""
        if self.hang_s is None or self.hang_killed_s is None:
            return None
        return (self.hang_killed_s - self.hang_s) / self.time_scale

    def headline(self) -> str:
        """One short line: starts, restarts, readiness and the hang, in cluster seconds."""
        ready = (
            f"ready after {self.ready_s / self.time_scale:.0f} cluster s"
            if self.ready_s is not None
            else "never ready"
        )
        text = f"{self.starts} start(s), restartCount {self.restart_count}, {ready}"
        if self.hang_s is not None:
            caught = self.hang_detected_seconds
            text += (
                f"; hang caught in {caught:.0f} cluster s"
                if caught is not None
                else ("; hang NOT caught")
            )
        return text

    def summary(self) -> str:
        ready = (
            f"ready after {self.ready_s:.1f} s ({self.ready_s / self.time_scale:.0f} cluster s)"
            if self.ready_s is not None
            else f"never ready in {self.window_s:.0f} s"
        )
        text = (
            f"{self.name}: {self.starts} container start(s), "
            f"{self.killed_while_loading} killed while loading, restartCount "
            f"{self.restart_count}, {ready}"
        )
        if self.hang_s is not None:
            caught = self.hang_detected_seconds
            text += (
                f"; hang caught by liveness after {caught:.0f} cluster s"
                if caught is not None
                else "; hang NOT caught by liveness"
            )
        return text


class _Recorder:
    """Pod callbacks: events, container runs and readiness, timed from pod creation."""

    def __init__(self):
        self.lock = threading.Lock()
        self.t0 = time.time()
        self.events: list[tuple[float, str, str, str]] = []
        self.containers: list[ContainerRun] = []
        self.ready_s: float | None = None
        self.restarts_before_ready: int | None = None
        self._seen: object = None
        self.forward = None

    def on_event(self, event) -> None:
        t = event.first_time - self.t0
        with self.lock:
            self.events.append((t, event.type, event.reason, event.message))
            if event.reason == "Killing" and "failed" in event.message and self.containers:
                current = self.containers[-1]
                if current.killed_by is None:
                    current.killed_by = "liveness" if "liveness" in event.message else "startup"
        if self.forward is not None:
            self.forward(t, event)

    def on_change(self, pod: Pod) -> None:
        now = time.time() - self.t0
        with self.lock:
            container = pod.container
            if container is not None and container is not self._seen:
                self._seen = container
                n = len(self.containers) + 1
                self.containers.append(ContainerRun(n, container.started_at - self.t0))
            if pod.ready and self.ready_s is None:
                self.ready_s = now
                self.restarts_before_ready = pod.restart_count
            if pod.state == "Terminated" and self.containers and container is not None:
                self._finish(self.containers[-1], container, pod)

    def _finish(self, run: ContainerRun, container, pod: Pod) -> None:
        if run.end_s is None:
            run.end_s = (container.finished_at or time.time()) - self.t0
            run.exit_code = container.exit_code
        if not run.phases:
            run.phases = phases_of(container.logs())

    def port_opened(self, container) -> None:
        with self.lock:
            run = self.containers[-1] if self.containers else None
            if run is not None and container is self._seen and run.port_open_s is None:
                run.port_open_s = time.time() - self.t0


def _watch_port(pod: Pod, rec: _Recorder, stop: threading.Event) -> None:
    """Note when each container's port first accepts a connection (every 50 ms)."""
    opened = None
    while not stop.wait(0.05):
        container = pod.container
        if container is None or container is opened or not container.running:
            continue
        if tcp_connects(pod.port):
            opened = container
            rec.port_opened(container)


def inject_hang(port: int, seconds: float = 30.0, token: str | None = None) -> None:
    """Block the server's event loop (`blocked_event_loop` fault): /health stops answering.

    token: the server's admin token (given to the pod in its env, see serving.admin).
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = json.dumps({"name": "blocked_event_loop", "value": seconds})
        conn.request("POST", "/admin/fault", body, admin_headers(token))
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST /admin/fault answered {resp.status}")
    finally:
        conn.close()


def run_pod(
    manifest: str,
    server: ServerSize = INCIDENT,
    *,
    window_s: float | None = None,
    until_ready: bool = False,
    hang_after_ready_s: float | None = None,
    hang_timeout_s: float = 12.0,
    time_scale: float = TIME_SCALE,
    on_event=None,
    expected_s: float | None = None,
) -> PodRun:
    """Run `manifest` (a v1 Pod) with the server of `server` and record what happens.

    The manifest's command and args are replaced by `server.command()`; everything else
    (ports, probes, grace periods) is the manifest's. The run lasts `window_s` real seconds
    (default 20), or ends once the pod is ready (`until_ready`, default window 60 s). With
    `hang_after_ready_s` (manifest seconds), the server's event loop is blocked that long after
    the pod got ready, and the run waits up to `hang_timeout_s` real seconds for liveness to
    kill it. on_event(t_s, event): called on every event occurrence (e.g. to print it live).
    A progress bar fills over `expected_s` (default: the window).
    """
    obj = manifests.validate(manifest, require_command=False)
    if obj["kind"] != "Pod":
        raise manifests.ManifestError([f"kind: this lab runs a v1 Pod, got {obj['kind']}"])
    waits = until_ready or hang_after_ready_s is not None
    if window_s is None:
        window_s = 60.0 if waits else 20.0
    rec = _Recorder()
    rec.forward = on_event
    stop = threading.Event()
    label = f"pod {obj['metadata']['name']}"
    with isolate.temp_dir() as tmp, progress.timed(expected_s or window_s, label):
        spec = manifests.pod_spec(obj, command=tuple(server.command()))
        # the checkpoint goes to a temp dir removed whatever happens; cwd: labsupport importable
        token = new_token()
        spec = spec.with_env(TMPDIR=str(tmp), **token_env(token)).replace(cwd=_PACKAGE_PARENT)
        pod = Pod(obj["metadata"]["name"], spec, time_scale=time_scale)
        pod.event_log.subscribe(rec.on_event)
        pod.on_change = rec.on_change
        rec.t0 = pod.created_at
        watcher = threading.Thread(target=_watch_port, args=(pod, rec, stop), daemon=True)
        hang_s = hang_killed_s = None
        try:
            pod.start()
            watcher.start()
            pod.wait_for((lambda p: p.ready) if waits else (lambda p: False), window_s)
            if hang_after_ready_s is not None and pod.ready:
                pod.wait_for(lambda p: False, hang_after_ready_s * time_scale)
                if pod.ready and pod.restart_count == rec.restarts_before_ready:
                    hang_s = time.time() - rec.t0
                    inject_hang(pod.port, token=token)
                    hang_killed_s = _wait_for_liveness_kill(pod, rec, hang_s, hang_timeout_s)
            describe = pod.describe()
        finally:
            stop.set()
            pod.close()
            watcher.join(5.0)
        with rec.lock:
            for run in rec.containers:
                if run.end_s is None and pod.container is not None:
                    run.phases = run.phases or phases_of(pod.container.logs())
    end_s = max(window_s, (hang_killed_s or 0) + 0.5)
    return PodRun(
        name=obj["metadata"]["name"],
        time_scale=time_scale,
        window_s=min(end_s, time.time() - rec.t0),
        containers=rec.containers,
        events=rec.events,
        ready_s=rec.ready_s,
        restarts_before_ready=rec.restarts_before_ready,
        restart_count=pod.restart_count,
        describe=describe,
        hang_s=hang_s,
        hang_killed_s=hang_killed_s,
    )


def _wait_for_liveness_kill(pod: Pod, rec: _Recorder, hang_s: float, timeout_s: float):
    """When liveness decided to kill the container after the hang (None: not in time)."""
    killed: list[float] = []

    def caught(_):
        killed[:] = [
            t
            for t, _, r, m in list(rec.events)
            if r == "Killing" and "liveness" in m and t >= hang_s
        ]
        return bool(killed)

    pod.wait_for(caught, timeout_s)
    return killed[0] if killed else None


@dataclass
class Comparison:
    """The incident's pod and the fixed one, run with the same server in one session."""

    before: PodRun
    after: PodRun

    @property
    def ratio(self) -> float:
        """Container starts to get one ready pod: before (a lower bound: never ready) / after."""
        after = self.after.starts_until_ready or self.after.starts
        return self.before.starts / after
