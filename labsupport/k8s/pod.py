"""A Pod over a real process: the kubelet's probe, restart and termination semantics.

    >>> import sys
    >>> from labsupport.k8s import Pod, PodSpec, Port, Probe, TCPSocket
    >>> spec = PodSpec(command=[sys.executable, "-m", "labsupport.k8s.demo_server",
    ...                         "--port", "$(PORT)"], ports=[Port(8000)],
    ...                readiness_probe=Probe(TCPSocket(8000), period_seconds=1))
    >>> with Pod("web-0", spec) as pod:
    ...     pod.wait_ready(timeout_s=20)
    True

Each declared containerPort gets a free host port on 127.0.0.1 for the pod's lifetime; the
container learns it from `$PORT` (first port) and `$PORT_<NAME>`, and `$(PORT)` in the command
expands as in Kubernetes. Probes name the container port and are sent to the host port.

Termination (delete, or a failed liveness/startup probe), as in
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination: the grace
period starts with the preStop hook (exec, sleep or httpGet); a hook still running at the
deadline gets one 2 s extension; then SIGTERM to the main process; at the deadline SIGKILL to
the whole container. A probe's own terminationGracePeriodSeconds overrides the pod's for the
kills it causes. Restarts (restartPolicy Always/OnFailure) use the kubelet's back-off
(`labsupport.k8s.backoff`): immediate, then 10 s, 20 s ... 300 s (manifest seconds), counted
from the exit, reset once a container has run 600 s.

Probe events as the kubelet records them (pkg/kubelet/prober/prober.go): `Unhealthy` "<Kind>
probe failed: ..." for a failure, `Unhealthy` "<Kind> probe errored and resulted in unknown
state: ..." for a prober error (thrown away: it neither fails nor passes the probe), and
`ProbeWarning` "<Kind> probe warning: ..." for a redirect the prober did not follow. Readiness
is probed at once when the startup probe succeeds (prober_manager.go UpdatePodStatus).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from labsupport.k8s import events as ev
from labsupport.k8s.backoff import crash_loop_backoff
from labsupport.k8s.container import Container
from labsupport.k8s.probe_worker import ProbeWorker
from labsupport.k8s.probes import ProbeTarget, run_probe
from labsupport.k8s.spec import PodSpec, Sleep, Terminated, expand, free_port

LABELS = {"startup": "Startup", "liveness": "Liveness", "readiness": "Readiness"}


class Pod:
    def __init__(
        self,
        name: str,
        spec: PodSpec,
        *,
        time_scale: float = 0.1,
        timing: ev.Timing | None = None,
        events: ev.EventLog | None = None,
        on_event: Callable | None = None,
        on_change: Callable[[Pod], None] | None = None,
        revision: str = "",
    ):
        self.name, self.spec, self.revision = name, spec, revision
        self.timing = timing or ev.Timing(time_scale=time_scale)
        self.event_log = events or ev.EventLog()
        if on_event:
            self.event_log.subscribe(on_event)
        self.on_change = on_change
        self.host_ports = {p.container_port: free_port() for p in spec.ports}
        self.created_at = time.time()
        self.phase, self.state, self.waiting_reason = "Pending", "Waiting", "ContainerCreating"
        self.ready = self.started = False
        self.restart_count = 0
        self.last_state: Terminated | None = None
        self.deletion_started: float | None = None  # time.time() when delete() was called
        self.container: Container | None = None
        self.done = threading.Event()  # set when the pod has stopped for good
        self._cv = threading.Condition()
        self._closing = False
        self._kill_request: str | None = None
        self._delete_grace: float = spec.termination_grace_period_seconds
        self._instance = 0
        self._finished_mono: float | None = None
        self._workers: list[ProbeWorker] = []
        self._previous_logs: list[str] = []
        self._thread = threading.Thread(target=self._kubelet, name=f"kubelet-{name}", daemon=True)

    # ---- public ---------------------------------------------------------------------------
    def __enter__(self) -> Pod:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Pod:
        """Schedule it: the kubelet thread starts the container."""
        msg = f"Successfully assigned {ev.NAMESPACE}/{self.name} to {ev.NODE}"
        self.emit("Normal", "Scheduled", msg, source="default-scheduler")
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        """Host port of the first declared container port."""
        return next(iter(self.host_ports.values()))

    @property
    def pid(self) -> int | None:
        return self.container.pid if self.container else None

    @property
    def terminating(self) -> bool:
        return self.deletion_started is not None

    @property
    def scheduled(self) -> bool:
        return self._thread.ident is not None

    @property
    def holds_node_resources(self) -> bool:
        """Scheduled and not fully stopped: it still holds its GPUs (terminating too)."""
        return self.scheduled and not self.done.is_set()

    @property
    def status(self) -> str:
        """kubectl get pods' STATUS column."""
        if self.terminating and not self.done.is_set():
            return "Terminating"
        if self.state == "Waiting":
            return self.waiting_reason
        if self.state == "Terminated" and self.last_state:
            return self.last_state.reason
        return self.phase

    @property
    def events(self) -> list[ev.Event]:
        return self.event_log.for_object("Pod", self.name)

    def logs(self, previous: bool = False) -> str:
        """Output of the current (or, with previous=True, the last) container run."""
        if previous:
            return "\n".join(self._previous_logs)
        return "\n".join(self.container.logs() if self.container else [])

    def wait_for(self, predicate: Callable[[Pod], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True

    def wait_ready(self, timeout_s: float) -> bool:
        return self.wait_for(lambda p: p.ready, timeout_s)

    def delete(self, grace_period_seconds: float | None = None) -> None:
        """Start the termination sequence and return; `done` is set when it has ended."""
        with self._cv:
            if self.deletion_started is not None:
                return
            self.deletion_started = time.time()
            self.ready = False
            if grace_period_seconds is not None:
                self._delete_grace = grace_period_seconds
            self._cv.notify_all()
        if not self.scheduled:  # never started: nothing to stop
            self.done.set()
        self._changed()

    def close(self, join: bool = True) -> None:
        """Stop now: SIGKILL the process group, stop every thread. Safe to call twice."""
        with self._cv:
            self._closing = True
            self.deletion_started = self.deletion_started or time.time()
            self.ready = False
            self._cv.notify_all()
        if self.container is not None:
            self.container.kill()
        if not join:
            return
        if self.scheduled and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)
        self.done.set()

    def describe(self) -> str:
        """`kubectl describe pod` text, events included."""
        from labsupport.k8s.describe import describe_pod

        return describe_pod(self)

    def status_dict(self) -> dict:
        """`kubectl get pod -o json`'s status: phase, containerStatuses, lastState ..."""
        from labsupport.k8s.describe import pod_status

        return pod_status(self)

    def emit(self, type_: str, reason: str, message: str, source: str = "kubelet") -> None:
        self.event_log.emit("Pod", self.name, type_, reason, message, source)

    def target(self) -> ProbeTarget:
        """Where probes and hooks go: host ports by container port number and by name."""
        ports = dict(self.host_ports)
        ports.update({p.name: self.host_ports[p.container_port] for p in self.spec.ports if p.name})
        return ProbeTarget("127.0.0.1", ports, self._env(), self.name)

    # ---- kubelet --------------------------------------------------------------------------
    def _changed(self) -> None:
        with self._cv:
            self._cv.notify_all()
        if self.on_change:
            self.on_change(self)

    def _stopping(self) -> bool:
        return self._closing or self.deletion_started is not None

    def _kubelet(self) -> None:
        backoff, key = crash_loop_backoff(self.timing), self.spec.name
        finished = None  # time.monotonic() when the last container was seen exited
        try:
            while not self._stopping():
                if finished is not None:  # kuberuntime_manager.go doBackOff
                    if backoff.is_in_backoff_since(key, finished):
                        self._back_off(finished + backoff.get(key))
                        if self._stopping():
                            break
                    backoff.next(key, finished)
                    self.restart_count += 1
                cause = self._run_container()
                finished = self._finished_mono
                term = self.last_state
                policy = self.spec.restart_policy
                if cause == "exited" and (
                    policy == "Never" or (policy == "OnFailure" and term.exit_code == 0)
                ):
                    self.phase = "Succeeded" if term.exit_code == 0 else "Failed"
                    break
        finally:
            if self.container is not None:
                self.container.kill()
            self.ready = False
            self.done.set()
            self._changed()

    def _back_off(self, deadline: float) -> None:
        """CrashLoopBackOff until `deadline` (time.monotonic())."""
        c = self.spec.name
        self.state, self.waiting_reason = "Waiting", "CrashLoopBackOff"
        msg = f"Back-off restarting failed container {c} in pod {self.name}_{ev.NAMESPACE}"
        self.emit("Warning", "BackOff", msg)
        with self._cv:
            while not self._stopping() and time.monotonic() < deadline:
                self._cv.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    def _env(self) -> dict:
        env = dict(os.environ)
        env.update({"PYTHONUNBUFFERED": "1", "HOSTNAME": self.name, "POD_NAME": self.name})
        env.update(dict(self.spec.env))
        for p in self.spec.ports:
            key = "PORT_" + (p.name or str(p.container_port)).upper().replace("-", "_")
            env[key] = str(self.host_ports[p.container_port])
        if self.spec.ports:
            env["PORT"] = str(self.port)
        return env

    def _run_container(self) -> str:
        """Start, watch and stop one container; returns why it stopped."""
        c, env = self.spec.name, self._env()
        argv = [expand(a, env) for a in self.spec.command]
        self._instance += 1
        self.emit("Normal", "Created", f"Created container {c}")
        t0 = time.time()
        if self.container is not None:
            self._previous_logs = self.container.logs()
        try:
            container = Container(argv, env, self.spec.cwd)
        except OSError as e:
            msg = f'exec: "{argv[0]}": {e.strerror}'
            self._finished_mono = time.monotonic()
            self.last_state = Terminated(128, "StartError", t0, time.time(), msg)
            self.state, self.waiting_reason = "Waiting", "RunContainerError"
            self.emit("Warning", "Failed", f"Error: failed to start container {c}: {msg}")
            return "exited"
        with self._cv:
            self.container = container
            self.phase, self.state, self._kill_request = "Running", "Running", None
            self.started = self.spec.startup_probe is None
            self.ready = self.started and self.spec.readiness_probe is None
        self.emit("Normal", "Started", f"Started container {c}")
        self._start_probes(container)
        self._changed()
        cause = self._watch()
        if cause in ("liveness", "startup"):
            grace = getattr(self.spec, f"{cause}_probe").termination_grace_period_seconds
            self._terminate(self.spec.termination_grace_period_seconds if grace is None else grace)
        elif cause == "delete" and not self._closing:
            self._terminate(self._delete_grace)
        container.kill()  # the runtime removes whatever is left of the container
        for w in self._workers:
            w.stop()
        code = container.exit_code
        self._finished_mono = container.finished_mono or time.monotonic()
        with self._cv:
            reason = "Completed" if code == 0 else "Error"
            self.last_state = Terminated(code, reason, t0, container.finished_at or time.time())
            self.state, self.ready, self.started = "Terminated", False, False
        self._changed()
        return cause

    def _start_probes(self, container: Container) -> None:
        workers = []
        for kind in ("startup", "liveness", "readiness"):
            probe = getattr(self.spec, f"{kind}_probe")
            if probe is None:
                continue
            gate = None if kind == "startup" else (lambda: self.started)
            worker = ProbeWorker(
                kind,
                probe,
                self.target(),
                self.timing,
                container.started_mono,
                self._probe_callback(self._instance),
                gate,
            )
            workers.append(worker)
        self._workers = workers  # all of them before any runs: startup may trigger readiness
        for worker in workers:
            worker.start()

    def _probe_event(self, kind: str, result) -> None:
        """The events prober.go records for one probe result."""
        label = LABELS[kind]
        if result.errored:
            msg = f"{label} probe errored and resulted in {result.state} state: {result.message}"
            self.emit("Warning", "Unhealthy", msg)
        elif result.warning:
            self.emit("Warning", "ProbeWarning", f"{label} probe warning: {result.message}")
        elif not result.ok:
            self.emit("Warning", "Unhealthy", f"{label} probe failed: {result.message}")

    def _probe_callback(self, instance: int):
        def on_result(kind, result, value, changed):
            if instance != self._instance or self._closing:
                return False
            self._probe_event(kind, result)
            if result.errored:  # thrown away: no verdict on the container
                return True
            if kind == "readiness":
                if changed and not self.terminating:
                    self.ready = bool(value)
                    self._changed()
                return True
            if kind == "startup" and value:
                self.started = True
                self.ready = self.spec.readiness_probe is None and not self.terminating
                self._changed()
                for w in self._workers:  # prober_manager.go: an immediate readiness run
                    if w.kind == "readiness":
                        w.trigger()
                return False  # a startup probe stops once it has succeeded
            if value is False:  # liveness or startup reached failureThreshold
                msg = f"Container {self.spec.name} failed {kind} probe, will be restarted"
                self.emit("Normal", "Killing", msg)
                with self._cv:
                    self._kill_request = self._kill_request or kind
                    self._cv.notify_all()
                return False
            return True

        return on_result

    def _watch(self) -> str:
        with self._cv:
            while True:
                if not self.container.running:
                    return "exited"
                if self._stopping():
                    return "delete"
                if self._kill_request:
                    return self._kill_request
                self._cv.wait(0.05)

    def _wait_exit(self, deadline: float) -> bool:
        with self._cv:
            while self.container.running and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(0.05, left))
        return not self.container.running

    def _terminate(self, grace_seconds: float) -> None:
        """preStop, then SIGTERM, then SIGKILL at the deadline that started with preStop."""
        c = self.spec.name
        for w in self._workers:
            if w.kind != "readiness":  # readiness keeps probing while the pod terminates
                w.stop(join=False)
        if self.deletion_started is not None:
            self.emit("Normal", "Killing", f"Stopping container {c}")
        deadline = time.monotonic() + self.timing.real_s(grace_seconds)
        if self.spec.pre_stop is not None and not self._closing:
            hook = self.spec.pre_stop.describe()
            msg = f"Running preStop hook of container {c}: {hook}"
            self.emit("Normal", "PreStopHook", msg, source="lab-supervisor")
            if not self._run_pre_stop(deadline):
                deadline = time.monotonic() + self.timing.real_s(2)  # the one-off extension
        if not self.container.running or self._closing:
            return
        self.container.sigterm()
        left = max(0.0, deadline - time.monotonic())
        msg = f"Sent SIGTERM to container {c} (grace period ends in {left:.2f}s)"
        self.emit("Normal", "Signal", msg, source="lab-supervisor")
        if not self._wait_exit(deadline) and not self._closing:
            msg = f"Grace period of {grace_seconds:g}s expired: sent SIGKILL to container {c}"
            self.emit("Warning", "Signal", msg, source="lab-supervisor")

    def _run_pre_stop(self, deadline: float) -> bool:
        """Run the hook until the deadline; False when it was still running there."""
        hook = self.spec.pre_stop
        if isinstance(hook, Sleep):
            end = min(deadline, time.monotonic() + self.timing.real_s(hook.seconds))
            with self._cv:
                while not self._closing and time.monotonic() < end:
                    self._cv.wait(min(0.05, end - time.monotonic()))
            return end < deadline or hook.seconds <= 0
        result = run_probe(hook, self.target(), max(0.001, deadline - time.monotonic()))
        if result.ok:
            return True
        msg = f"PreStopHook failed for container {self.spec.name}: {result.message}"
        self.emit("Warning", "FailedPreStopHook", msg)
        return time.monotonic() < deadline
