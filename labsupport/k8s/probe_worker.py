"""The kubelet's probe workers: thresholds, timing, holds (pkg/kubelet/prober/worker.go).

    >>> from labsupport.k8s.probe_worker import ProbeState
    >>> state = ProbeState(success_threshold=1, failure_threshold=3, initial=True)
    >>> [state.observe(False) for _ in range(3)], state.value
    ([False, False, True], False)

`ProbeState` is doProbe's threshold logic: the value (readiness starts as failure, liveness as
success, startup as unknown) changes only after failureThreshold failures or successThreshold
successes in a row. `ProbeWorker` runs one probe of one container instance on its own thread:
- `do_probe()` is one tick of doProbe: nothing while on hold, within initialDelaySeconds of the
  container's start, or while `gate()` says no (liveness and readiness before the startup
  probe has succeeded); else one probe. A prober error (`ProbeResult.errored`) is retried up to
  3 times in the tick (prober.go maxProbeRetries) and then thrown away: it moves no threshold.
  A liveness failure at its threshold, or a startup result at either threshold, puts the worker
  on hold (resultRun back to 0) until the container is replaced, which here means a new worker.
- the loop: first tick initialDelaySeconds after the container started, then every
  periodSeconds (ticks a slow probe overran are skipped, keeping the phase, as a Go ticker
  does). `trigger()` runs a tick now and restarts the period from it (worker.go manualTriggerCh
  with `probeTicker.Reset`): the kubelet triggers readiness as soon as the startup probe has
  succeeded (prober_manager.go UpdatePodStatus), so readiness does not wait a period.

on_result(kind, result, value, changed) is called after every probe, errored ones too (value
unchanged, changed False) so that the caller can record the event; returning False stops the
worker. All seconds are manifest seconds, scaled by `Timing`.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from labsupport.k8s.events import Timing
from labsupport.k8s.probes import Probe, ProbeResult, ProbeTarget, run_probe

MAX_PROBE_RETRIES = 3  # pkg/kubelet/prober/prober.go: runProbeWithRetries on an error


class ProbeState:
    """doProbe's lastResult / resultRun logic: flip only after N consecutive equal results."""

    def __init__(self, success_threshold: int, failure_threshold: int, initial: bool | None):
        self.success_threshold = success_threshold
        self.failure_threshold = failure_threshold
        self.value = initial  # None: unknown (startup probe before its first verdict)
        self.last: bool | None = None  # lastResult
        self.run = 0  # resultRun
        self.reached = False  # the last result reached its threshold (resultsManager.Set)

    def observe(self, ok: bool) -> bool:
        """Record one result; True when the probe's value changed."""
        if ok == self.last:
            self.run += 1
        else:
            self.last, self.run = ok, 1
        needed = self.success_threshold if ok else self.failure_threshold
        self.reached = self.run >= needed
        if not self.reached:  # below threshold: leave the probe state unchanged
            return False
        changed = self.value != ok
        self.value = ok
        return changed


class ProbeWorker:
    """One probe of one container instance, on its own thread (as the kubelet does)."""

    INITIAL = {"readiness": False, "liveness": True, "startup": None}

    def __init__(
        self,
        kind: str,
        probe: Probe,
        target: ProbeTarget,
        timing: Timing,
        started_at: float,
        on_result: Callable,
        gate: Callable[[], bool] | None = None,
    ):
        self.kind, self.probe, self.target, self.timing = kind, probe, target, timing
        self.started_at = started_at  # time.monotonic() of the container start
        self.on_result, self.gate = on_result, gate
        self.state = ProbeState(
            probe.success_threshold, probe.failure_threshold, self.INITIAL[kind]
        )
        self.on_hold = False
        self.probes_run = 0
        # (seconds since the container started, result), the latest 1000
        self.results: collections.deque = collections.deque(maxlen=1000)
        self._cv = threading.Condition()
        self._stopped = self._manual = False
        self._thread = threading.Thread(target=self._loop, name=f"{kind}-probe", daemon=True)

    def start(self) -> ProbeWorker:
        self._thread.start()
        return self

    def stop(self, join: bool = True) -> None:
        """Stop the worker; safe to call any number of times."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        if join and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def trigger(self) -> None:
        """Run a tick now (the kubelet's manual trigger); non-blocking."""
        with self._cv:
            self._manual = True
            self._cv.notify_all()

    def do_probe(self) -> bool:
        """One tick of doProbe; returns whether the worker should go on."""
        if self.on_hold:
            return True
        if time.monotonic() - self.started_at < self.timing.real_s(
            self.probe.initial_delay_seconds
        ):
            return True
        if self.gate is not None and not self.gate():
            return True
        result = self._probe()
        if self._stopped:
            return False
        self.probes_run += 1
        self.results.append((time.monotonic() - self.started_at, result))
        if result.errored:  # worker.go: "Prober error, throw away the result."
            return self.on_result(self.kind, result, self.state.value, False) is not False
        changed = self.state.observe(result.ok)
        if self.state.reached and (
            self.kind == "startup" or (self.kind == "liveness" and not result.ok)
        ):  # worker.go: on hold until a new container, resultRun back to 0
            self.on_hold, self.state.run = True, 0
        return self.on_result(self.kind, result, self.state.value, changed) is not False

    def _probe(self) -> ProbeResult:
        timeout_s = self.timing.probe_timeout_s(self.probe.timeout_seconds)
        for _ in range(MAX_PROBE_RETRIES):
            result = run_probe(self.probe.handler, self.target, timeout_s)
            if not result.errored or self._stopped:
                break
        return result

    def _wait(self, due: float) -> str:
        with self._cv:
            while True:
                if self._stopped:
                    return "stop"
                if self._manual:
                    self._manual = False
                    return "manual"
                left = due - time.monotonic()
                if left <= 0:
                    return "tick"
                self._cv.wait(left)

    def _loop(self) -> None:
        period_s = self.timing.real_s(self.probe.period_seconds)
        due = self.started_at + self.timing.real_s(self.probe.initial_delay_seconds)
        while True:
            why = self._wait(due)
            if why == "stop":
                return
            before = self.probes_run
            if not self.do_probe():
                return
            now = time.monotonic()
            if why == "manual":
                if self.probes_run != before:  # probeTicker.Reset(period) from the manual run
                    due = now + period_s
                continue
            due += period_s
            if due < now:  # a slow probe: skip the ticks it overran, keep the phase
                due += period_s * ((now - due) // period_s + 1)
