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

Termination (delete, or a failed liveness/startup probe): preStop, SIGTERM, SIGKILL at the
end of the grace period (`pod_termination`); a probe's own terminationGracePeriodSeconds
overrides the pod's for the kills it causes. Probes and their events: `pod_probes`. Restarts
(restartPolicy Always/OnFailure) use the kubelet's back-off (`backoff`): immediate, then 10 s,
20 s ... 300 s (manifest seconds), counted from the exit, reset once a container ran 600 s.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from labsupport.k8s import events as ev
from labsupport.k8s.backoff import crash_loop_backoff
from labsupport.k8s.container import Container
from labsupport.k8s.pod_probes import PodProbes
from labsupport.k8s.pod_termination import PodTermination
from labsupport.k8s.probe_worker import ProbeWorker
from labsupport.k8s.probes import ProbeTarget
from labsupport.k8s.spec import PodSpec, Terminated, expand, free_port


class Pod(PodProbes, PodTermination):
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
