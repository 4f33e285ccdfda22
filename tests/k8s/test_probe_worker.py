"""Probe workers: the threshold logic and probe timing (Kubernetes' own cases: tests/peer/k8s)."""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from labsupport.k8s.events import Timing
from labsupport.k8s.probe_worker import ProbeState, ProbeWorker
from labsupport.k8s.probes import Call, Probe, ProbeTarget

pytestmark = pytest.mark.timeout(60)


def test_probe_state_needs_consecutive_results():
    state = ProbeState(success_threshold=1, failure_threshold=3, initial=True)
    assert [state.observe(ok) for ok in (False, False, True, False, False)] == [False] * 5
    assert state.value is True, "a success in between resets the failure count"
    assert state.observe(False) is True and state.value is False
    ready = ProbeState(success_threshold=2, failure_threshold=1, initial=False)
    assert [ready.observe(True), ready.observe(True)] == [False, True]


def test_worker_waits_initial_delay_then_probes_every_period():
    timing = Timing(time_scale=0.1)
    calls: list[float] = []
    t0 = time.monotonic()
    probe = Probe(
        Call(lambda t: calls.append(time.monotonic() - t0) or True),
        initial_delay_seconds=3,
        period_seconds=1,
    )
    worker = ProbeWorker("readiness", probe, ProbeTarget(), timing, t0, lambda *a: True)
    worker.start()
    time.sleep(1.0)
    worker.stop()
    assert calls and calls[0] >= 0.3, f"first probe at {calls[0]:.3f}s, before initialDelay"
    assert calls[0] < 0.6
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert len(gaps) >= 3 and 0.08 <= statistics.median(gaps) <= 0.2, gaps


def test_worker_failure_threshold_and_gate():
    seen = []
    gate_open = threading.Event()
    probe = Probe(Call(lambda t: False), period_seconds=1, failure_threshold=3)

    def on_result(kind, result, value, changed):
        seen.append((value, changed))
        return not (changed and value is False)  # stop at the flip, as the kubelet does

    worker = ProbeWorker(
        "liveness",
        probe,
        ProbeTarget(),
        Timing(time_scale=0.05),
        time.monotonic(),
        on_result,
        gate=gate_open.is_set,
    )
    worker.start()
    time.sleep(0.3)
    assert seen == [], "a closed gate (startup not done) skips the probe entirely"
    gate_open.set()
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    assert seen == [(True, False), (True, False), (False, True)]


def test_old_import_path_still_works():
    from labsupport.k8s import probes

    assert probes.ProbeWorker is ProbeWorker and probes.ProbeState is ProbeState
