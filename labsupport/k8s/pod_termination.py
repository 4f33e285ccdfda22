"""The kubelet's termination of a Pod's container: preStop, SIGTERM, SIGKILL.

    >>> from labsupport.k8s.pod_termination import PRE_STOP_EXTENSION_SECONDS
    >>> PRE_STOP_EXTENSION_SECONDS
    2

A mixin of `labsupport.k8s.pod.Pod` (it uses the pod's container, lock and events), following
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination: the grace
period starts with the preStop hook (exec, sleep or httpGet); a hook still running at the
deadline gets one 2 s extension; then SIGTERM to the main process; at the deadline SIGKILL to
the whole container. Readiness keeps probing while the pod terminates.
"""

from __future__ import annotations

import time

from labsupport.k8s.probes import run_probe
from labsupport.k8s.spec import Sleep

PRE_STOP_EXTENSION_SECONDS = 2  # the one-off extension of a preStop hook still running


class PodTermination:
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
                deadline = time.monotonic() + self.timing.real_s(PRE_STOP_EXTENSION_SECONDS)
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
