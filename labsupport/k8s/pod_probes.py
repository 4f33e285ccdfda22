"""The kubelet's probe side of a Pod: one worker per probe, what their results do.

    >>> from labsupport.k8s.pod_probes import LABELS
    >>> LABELS["liveness"]
    'Liveness'

A mixin of `labsupport.k8s.pod.Pod` (it uses the pod's state and lock). As the kubelet:
startup, liveness and readiness workers start with each container; liveness and readiness
wait for the startup probe (`Pod.started`); when it succeeds, readiness is triggered at once
(pkg/kubelet/prober/prober_manager.go UpdatePodStatus) and the startup worker stops. A
readiness change sets `Pod.ready` (not while terminating); liveness or startup at their failure
threshold ask the kubelet loop to kill the container. Events as pkg/kubelet/prober/prober.go
records them: `Unhealthy` "<Kind> probe failed: ...", `Unhealthy` "<Kind> probe errored and
resulted in unknown state: ..." for a prober error (thrown away), `ProbeWarning` "<Kind> probe
warning: ..." for a redirect that was not followed.
"""

from __future__ import annotations

from labsupport.k8s.container import Container
from labsupport.k8s.probe_worker import ProbeWorker

LABELS = {"startup": "Startup", "liveness": "Liveness", "readiness": "Readiness"}


class PodProbes:
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
