"""A Deployment over real processes: replicas, endpoints, a load balancer, rolling updates.

    >>> import sys
    >>> from labsupport.k8s import Deployment, PodSpec, Port, Probe, HTTPGet
    >>> spec = PodSpec(command=[sys.executable, "-m", "labsupport.k8s.demo_server",
    ...                         "--port", "$(PORT)"], ports=[Port(8000)],
    ...                readiness_probe=Probe(HTTPGet("/ready", 8000), period_seconds=1))
    >>> with Deployment("web", spec, replicas=2, time_scale=0.1) as web:
    ...     web.wait_ready(timeout_s=30)
    ...     result = web.rollout(spec.with_env(VERSION="2"), timeout_s=60)
    ...     (result.succeeded, len(web.endpoints))
    True
    (True, 2)

The controller follows the Deployment controller's arithmetic
(kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment):
maxSurge (a count or a percentage, rounded up) bounds the pods above `replicas`, maxUnavailable
(rounded down, at most `replicas`) bounds the available pods below it; both 0 becomes
maxUnavailable=1. New pods are created first, old ones deleted while
`available >= replicas - maxUnavailable`, unavailable old pods first (`rollout.plan`).
Terminating pods do not count as replicas but keep their GPUs until they have exited
(`node_gpus` models a node with that many GPUs: a surge pod that does not fit stays Pending
with FailedScheduling, and the rollout stalls until progressDeadlineSeconds). Progress, as the
controller counts it (DeploymentProgressing): more updated, fewer old, more ready or more
available pods; a rollout that makes none for progressDeadlineSeconds reports
ProgressDeadlineExceeded.

Endpoints hold ready, non-terminating pods. The balancer learns a change only after
`endpoint_propagation_seconds` (manifest seconds): in a cluster the EndpointSlice update
reaches kube-proxy and gateways seconds after the pod is marked Terminating, which is why a
preStop sleep exists. Set it to 0 for an ideal network.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import secrets
import threading
import time
from collections.abc import Callable

from labsupport.k8s import events as ev
from labsupport.k8s.balancer import Balancer
from labsupport.k8s.pod import Pod
from labsupport.k8s.rollout import (
    DeploymentStatus,
    PodView,
    Recreate,
    RollingUpdate,
    RolloutResult,
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    old_pods_running,
    plan,
)
from labsupport.k8s.spec import PodSpec


class Deployment:
    def __init__(
        self,
        name: str,
        template: PodSpec,
        replicas: int = 1,
        *,
        strategy: RollingUpdate | Recreate | None = None,
        time_scale: float = 0.1,
        timing: ev.Timing | None = None,
        min_ready_seconds: float = 0,
        progress_deadline_seconds: float = 600,
        node_gpus: int | None = None,
        endpoint_propagation_seconds: float = 1.0,
        balancer: bool = True,
        on_event: Callable | None = None,
        events: ev.EventLog | None = None,
    ):
        self.name, self.template, self.replicas = name, template, replicas
        self.strategy = strategy or RollingUpdate()
        self.timing = timing or ev.Timing(time_scale=time_scale)
        self.min_ready_seconds = min_ready_seconds
        self.progress_deadline_seconds = progress_deadline_seconds
        self.node_gpus = node_gpus
        self.endpoint_propagation_seconds = endpoint_propagation_seconds
        self.event_log = events or ev.EventLog()
        if on_event:
            self.event_log.subscribe(on_event)
        self.balancer = Balancer(name=name) if balancer else None
        self.pods: list[Pod] = []  # terminating ones too, until their process has exited
        self.revision = self._hash(template)
        self.history: list[PodSpec] = [template]
        self.endpoint_history: list[tuple[float, list[str]]] = []  # (time.time(), pod names)
        self._published: list = []
        self._pending_routes: list[tuple[float, list]] = []
        self._ready_since: dict[str, float] = {}
        self._cv = threading.Condition()
        self._stop = False
        self._last_progress = time.monotonic()
        self._status = DeploymentStatus()
        self._thread = threading.Thread(target=self._controller, name=f"deploy-{name}", daemon=True)

    # ---- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Deployment:
        try:
            if self.balancer:
                self.balancer.start()
            self._thread.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill every pod's process group, stop the controller and the balancer. Idempotent."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread.ident and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        pods = list(self.pods)
        for p in pods:  # kill all first, then wait for their threads
            p.close(join=False)
        for p in pods:
            p.close()
        if self.balancer:
            self.balancer.close()

    # ---- views ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if not self.balancer:
            raise RuntimeError("this deployment was created with balancer=False")
        return self.balancer.url

    @property
    def endpoints(self) -> list[tuple[str, str, int]]:
        """Ready, non-terminating pods: the EndpointSlice (the balancer lags behind it)."""
        return [
            (p.name, "127.0.0.1", p.port)
            for p in list(self.pods)
            if p.ready and not p.terminating and p.spec.ports
        ]

    @property
    def events(self) -> list[ev.Event]:
        return self.event_log.for_object("Deployment", self.name)

    def available(self, pod: Pod) -> bool:
        since = self._ready_since.get(pod.name)
        return (
            pod.ready
            and not pod.terminating
            and since is not None
            and time.monotonic() - since >= self.timing.real_s(self.min_ready_seconds)
        )

    def status(self) -> DeploymentStatus:
        """The status counts the controller compares (non-terminating pods)."""
        live = [p for p in self.pods if not p.terminating]
        return DeploymentStatus(
            replicas=len(live),
            updated=sum(p.revision == self.revision for p in live),
            ready=sum(p.ready for p in live),
            available=sum(self.available(p) for p in live),
        )

    def counts(self) -> dict:
        live = [p for p in self.pods if not p.terminating]
        return {
            "replicas": len(live),
            "updated": sum(p.revision == self.revision for p in live),
            "ready": sum(p.ready for p in live),
            "available": sum(self.available(p) for p in live),
            "terminating": sum(p.terminating and not p.done.is_set() for p in self.pods),
        }

    def describe(self) -> str:
        from labsupport.k8s.describe import describe_deployment

        return describe_deployment(self)

    def wait_for(self, predicate: Callable[[Deployment], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate(self):
            if time.monotonic() > deadline:
                return False
            with self._cv:
                self._cv.wait(0.02)
        return True

    def complete(self) -> bool:
        return deployment_complete(self.replicas, self.status())

    def wait_ready(self, timeout_s: float) -> bool:
        """All replicas of the current template available."""
        return self.wait_for(Deployment.complete, timeout_s)

    # ---- changes --------------------------------------------------------------------------
    def scale(self, replicas: int) -> None:
        with self._cv:
            self.replicas = replicas
            self._cv.notify_all()

    def rollout(self, template: PodSpec, timeout_s: float | None = None) -> RolloutResult:
        """Apply a new pod template and wait for the rollout (kubectl apply + rollout status)."""
        t0, mono0 = time.time(), time.monotonic()
        with self._cv:
            self.template, self.revision = template, self._hash(template)
            self.history.append(template)
            self._last_progress = time.monotonic()
            self._cv.notify_all()
        revision, max_pods, min_avail = self.revision, 0, self.replicas
        deadline = None if timeout_s is None else mono0 + timeout_s
        reason = "Complete"
        while True:
            with self._cv:
                max_pods = max(max_pods, sum(p.holds_node_resources for p in self.pods))
                min_avail = min(min_avail, sum(self.available(p) for p in self.pods))
                if self.complete():
                    break
                if self._stop:
                    reason = "Closed"
                    break
                stalled_s = time.monotonic() - self._last_progress
                stalled = stalled_s / self.timing.time_scale  # manifest seconds
                if deployment_timed_out(self.progress_deadline_seconds, stalled):
                    reason = "ProgressDeadlineExceeded"
                    self._emit(
                        "Warning",
                        reason,
                        f'ReplicaSet "{self.name}-{revision}" has timed out progressing.',
                    )
                    break
                if deadline is not None and time.monotonic() > deadline:
                    reason = "Timeout"
                    break
                self._cv.wait(0.02)
        duration_s = time.monotonic() - mono0
        old = [p for p in self.pods if p.revision != revision and p.terminating]
        for p in old:
            p.done.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        drained_s = time.monotonic() - mono0
        events = [e for e in self.event_log.all() if e.last_time >= t0]
        return RolloutResult(
            reason == "Complete",
            reason,
            revision,
            duration_s,
            drained_s,
            max_pods,
            min_avail,
            events,
        )

    def rollout_in_background(
        self, template: PodSpec, timeout_s: float | None = None
    ) -> concurrent.futures.Future:
        """Start `rollout` on a thread; the Future's result is the RolloutResult."""
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run():
            try:
                fut.set_result(self.rollout(template, timeout_s))
            except BaseException as e:
                fut.set_exception(e)

        threading.Thread(target=run, name=f"rollout-{self.name}", daemon=True).start()
        return fut

    def undo(self, timeout_s: float | None = None) -> RolloutResult:
        """kubectl rollout undo: back to the previous template."""
        if len(self.history) < 2:
            raise RuntimeError("no previous revision")
        return self.rollout(self.history[-2], timeout_s)

    # ---- controller -----------------------------------------------------------------------
    @staticmethod
    def _hash(template: PodSpec) -> str:
        return hashlib.sha1(repr(template).encode()).hexdigest()[:10]

    def _emit(self, type_, reason, message, kind="Deployment", source="deployment-controller"):
        self.event_log.emit(kind, self.name, type_, reason, message, source)

    def _pod_changed(self, pod: Pod) -> None:
        if pod.ready and not pod.terminating:
            self._ready_since.setdefault(pod.name, time.monotonic())
        else:
            self._ready_since.pop(pod.name, None)
        with self._cv:
            self._cv.notify_all()

    def _controller(self) -> None:
        while True:
            with self._cv:
                if self._stop:
                    return
                try:
                    self._reconcile()
                    self._schedule()
                    self._route()
                    self._track_progress()
                except Exception as e:  # keep reconciling; show what went wrong
                    self._emit("Warning", "ReconcileError", f"{type(e).__name__}: {e}")
                self._cv.wait(0.02)

    def _track_progress(self) -> None:
        """syncRolloutStatus: any progress resets the progressDeadlineSeconds clock."""
        status = self.status()
        if deployment_progressing(self._status, status):
            self._last_progress = time.monotonic()
        self._status = status

    def _create(self, n: int) -> None:
        rs = f"{self.name}-{self.revision}"
        before = sum(p.revision == self.revision and not p.terminating for p in self.pods)
        for _ in range(n):
            pod = Pod(
                f"{rs}-{secrets.token_hex(3)[:5]}",
                self.template,
                timing=self.timing,
                events=self.event_log,
                on_change=self._pod_changed,
                revision=self.revision,
            )
            self.pods.append(pod)
        self._emit(
            "Normal",
            "ScalingReplicaSet",
            f"Scaled up replica set {rs} from {before} to {before + n}",
        )

    def _delete(self, pods: list[Pod]) -> None:
        by_rs: dict[str, int] = {}
        for p in pods:
            by_rs[p.revision] = by_rs.get(p.revision, 0) + 1
        for rev, n in by_rs.items():
            before = sum(p.revision == rev and not p.terminating for p in self.pods)
            self._emit(
                "Normal",
                "ScalingReplicaSet",
                f"Scaled down replica set {self.name}-{rev} from {before} to {before - n}",
            )
        for p in pods:
            p.delete()

    def _reconcile(self) -> None:
        self.pods = [p for p in self.pods if not (p.terminating and p.done.is_set())]
        live = {p.name: p for p in self.pods if not p.terminating}
        views = [
            PodView(p.name, p.revision == self.revision, self.available(p), p.ready, p.scheduled)
            for p in live.values()
        ]
        old_running = old_pods_running(
            [p.phase for p in self.pods if p.revision != self.revision and p.terminating]
        )
        step = plan(views, self.replicas, self.strategy, old_running)
        if step.create:
            self._create(step.create)
        if step.delete:
            self._delete([live[k] for k in step.delete])

    def _schedule(self) -> None:
        """Start pending pods that fit on the node (GPUs held by terminating pods count)."""
        used = sum(p.spec.gpus for p in self.pods if p.holds_node_resources)
        for p in self.pods:
            if p.scheduled or p.terminating:
                continue
            if self.node_gpus is not None and used + p.spec.gpus > self.node_gpus:
                if not any(e.reason == "FailedScheduling" for e in p.events):
                    p.emit(
                        "Warning",
                        "FailedScheduling",
                        f"0/1 nodes are available: 1 Insufficient nvidia.com/gpu "
                        f"(requested {p.spec.gpus}, free {self.node_gpus - used}). "
                        "preemption: 0/1 nodes are available: 1 No preemption victims "
                        "found for incoming pod.",
                        source="default-scheduler",
                    )
                continue
            used += p.spec.gpus
            p.start()

    def _route(self) -> None:
        """Publish endpoint changes to the balancer after the propagation delay."""
        now = time.monotonic()
        current = self.endpoints
        latest = self._pending_routes[-1][1] if self._pending_routes else self._published
        if current != latest:
            delay_s = self.timing.real_s(self.endpoint_propagation_seconds)
            self._pending_routes.append((now + delay_s, current))
            self.endpoint_history.append((time.time(), [n for n, _, _ in current]))
        while self._pending_routes and self._pending_routes[0][0] <= now:
            _, routes = self._pending_routes.pop(0)
            before = {n for n, _, _ in self._published}
            after = {n for n, _, _ in routes}
            self._published = routes
            if self.balancer:
                self.balancer.set_backends(routes)
            change = [f"+{n}" for n in sorted(after - before)] + [
                f"-{n}" for n in sorted(before - after)
            ]
            self._emit(
                "Normal",
                "EndpointsSynced",
                f"balancer routes to {len(routes)} endpoint(s) ({', '.join(change)})",
                kind="Service",
                source="kube-proxy",
            )
