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

Rollouts and `kubectl rollout undo`: `deployment_rollouts`. Scheduling on a node with
`node_gpus` and the Service's endpoints, which reach the balancer only after
`endpoint_propagation_seconds` (manifest seconds; 0 for an ideal network): `deployment_node`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable

from labsupport.k8s import events as ev
from labsupport.k8s.balancer import Balancer
from labsupport.k8s.deployment_node import DeploymentNode
from labsupport.k8s.deployment_rollouts import DeploymentRollouts
from labsupport.k8s.pod import Pod
from labsupport.k8s.rollout import (
    DeploymentStatus,
    PodView,
    Recreate,
    RollingUpdate,
    deployment_complete,
    deployment_progressing,
    old_pods_running,
    plan,
)
from labsupport.k8s.spec import PodSpec


class Deployment(DeploymentRollouts, DeploymentNode):
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
