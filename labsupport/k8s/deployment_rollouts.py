"""`kubectl apply` of a new template and `kubectl rollout status` / `undo` on a Deployment.

    >>> from labsupport.k8s.deployment_rollouts import DeploymentRollouts
    >>> sorted(n for n in vars(DeploymentRollouts) if not n.startswith("_"))
    ['rollout', 'rollout_in_background', 'undo']

A mixin of `labsupport.k8s.deployment.Deployment`. `rollout` sets the template (a new
revision), lets the controller thread play the rollout (`rollout.plan`, one step per sync) and
waits until the Deployment is complete (DeploymentComplete), or it has made no progress for
progressDeadlineSeconds (DeploymentTimedOut: ProgressDeadlineExceeded, with its event), or
`timeout_s` passed. The result says how long it took, until the old processes exited too,
the most pods holding the node at once and the fewest available.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

from labsupport.k8s.rollout import RolloutResult, deployment_timed_out
from labsupport.k8s.spec import PodSpec


class DeploymentRollouts:
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
