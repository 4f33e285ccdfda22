"""Peer cases: the kubelet's probe worker (thresholds, initial delay, holds, errors).

Ported from kubernetes/kubernetes pkg/kubelet/prober/worker_test.go at commit
632f162d719dd3df43a826b1d2a0fd2c0b5cbb72, run against `labsupport.k8s.probe_worker`.
Go's `w.doProbe(ctx)` is `ProbeWorker.do_probe()`, `fakeExecProber{result, err}` a fake
`run_probe` (monkeypatched, as the Go tests swap `m.prober.exec`), the results manager's value
`worker.state.value` (None = Unknown), `w.resultRun` `worker.state.run`, `w.onHold`
`worker.on_hold`. A container status "started" is the gate; a new container ID is a new worker
(the lab makes one per container instance). The code cases beside the tables cite
worker.go at commit 61ecc560357a1af440735b32ddcf4ee143c0d0ea (prober errors, manual trigger)
and prober_manager.go at 0181833dbbd0083d674ff7e5496537d7b5a7b856 (readiness triggered once
started). Out of scope (pod-status plumbing): docs/peer_scope.md.
"""

from __future__ import annotations

import time

import pytest

from labsupport.k8s import probe_worker
from labsupport.k8s.events import Timing
from labsupport.k8s.probe_worker import ProbeWorker
from labsupport.k8s.probes import Call, Probe, ProbeResult, ProbeTarget

SOURCE = "worker_test.go @ 632f162d719dd3df43a826b1d2a0fd2c0b5cbb72"
KINDS = ("liveness", "readiness", "startup")
SUCCESS, FAILURE, ERROR = "success", "failure", "error"


class FakeProber:
    """fakeExecProber: every probe returns `result` (success, failure, or a prober error)."""

    def __init__(self, monkeypatch):
        self.result, self.calls = SUCCESS, 0
        monkeypatch.setattr(probe_worker, "run_probe", self)

    def __call__(self, handler, target, timeout_s):
        self.calls += 1
        if self.result == ERROR:
            return ProbeResult(False, "exec: not found", 0.0, errored=True)
        return ProbeResult(self.result == SUCCESS, self.result, 0.0)


@pytest.fixture
def prober(monkeypatch):
    return FakeProber(monkeypatch)


class Started:
    """The container status' `started`, as the gate of liveness and readiness."""

    def __init__(self, value: bool):
        self.value = value

    def __call__(self) -> bool:
        return self.value


def new_worker(kind, *, started=True, ran_s=100.0, **probe_fields) -> ProbeWorker:
    """newTestWorker: a worker for a container that started `ran_s` seconds ago."""
    probe = Probe(Call(lambda t: True, name="fake"), **probe_fields)
    gate = None if kind == "startup" else Started(started)
    return ProbeWorker(
        kind, probe, ProbeTarget(), Timing(time_scale=1), time.monotonic() - ran_s,
        lambda *a: True, gate,
    )  # fmt: skip


INITIAL = {"liveness": True, "readiness": False, "startup": None}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "initial_delay", [0, -100], ids=["probe successful", "initial delay passed"]
)
def test_do_probe(prober, kind, initial_delay):
    """TestDoProbe (worker_test.go @ 632f162d): the running-container cases; the rest are
    pod-status plumbing (peer_scope.md). Probing a started container gives Success."""
    w = new_worker(kind, started=kind != "startup", initial_delay_seconds=initial_delay)
    assert w.do_probe() is True
    assert w.state.value is True and prober.calls == 1


@pytest.mark.parametrize("kind", KINDS)
def test_initial_delay(prober, kind):
    """TestInitialDelay (worker_test.go @ 632f162d): the initial value during the delay
    (Success for liveness, Failure for readiness, Unknown for startup), Success after it."""
    w = new_worker(kind, started=kind != "startup", ran_s=0, initial_delay_seconds=10)
    assert w.do_probe() is True and w.state.value is INITIAL[kind] and prober.calls == 0
    w.started_at -= 100  # 100 seconds later...
    assert w.do_probe() is True and w.state.value is True


def test_failure_threshold(prober):
    """TestFailureThreshold (worker_test.go @ 632f162d): readiness, success 1, failure 3."""
    w = new_worker("readiness", success_threshold=1, failure_threshold=3)
    for _ in range(2):
        prober.result = SUCCESS
        assert [(w.do_probe(), w.state.value) for _ in range(3)] == [(True, True)] * 3
        prober.result = FAILURE
        assert [(w.do_probe(), w.state.value) for _ in range(2)] == [(True, True)] * 2
        assert [(w.do_probe(), w.state.value) for _ in range(3)] == [(True, False)] * 3


def test_success_threshold(prober):
    """TestSuccessThreshold (worker_test.go @ 632f162d): readiness, success 3, failure 1."""
    w = new_worker("readiness", success_threshold=3, failure_threshold=1)
    for _ in range(2):
        assert [(w.do_probe(), w.state.value) for _ in range(2)] == [(True, False)] * 2
        assert [(w.do_probe(), w.state.value) for _ in range(3)] == [(True, True)] * 3
        prober.result = FAILURE
        assert (w.do_probe(), w.state.value) == (True, False)
        prober.result = SUCCESS


def test_startup_probe_success_threshold(prober):
    """TestStartupProbeSuccessThreshold (worker_test.go @ 632f162d): on hold once it succeeded."""
    w = new_worker("startup", success_threshold=1, failure_threshold=3)
    assert not w.on_hold
    assert w.do_probe() is True and w.state.value is True
    assert w.on_hold and w.state.run == 0


def test_startup_probe_failure_threshold(prober):
    """TestStartupProbeFailureThreshold (worker_test.go @ 632f162d)."""
    prober.result = FAILURE
    w = new_worker("startup", success_threshold=1, failure_threshold=3)
    for i in (1, 2):
        assert not w.on_hold
        assert w.do_probe() is True and w.state.value is None and w.state.run == i
    assert w.do_probe() is True and w.state.value is False and w.state.run == 0
    assert w.on_hold and w.state.run == 0


@pytest.mark.parametrize("kind", KINDS)
def test_clean_up(prober, kind):
    """TestCleanUp (worker_test.go @ 632f162d): the worker runs, reaches Success, and stops;
    stop() may be called any number of times."""
    w = new_worker(kind, started=kind != "startup", period_seconds=0.05)
    w.start()
    deadline = time.monotonic() + 5
    while w.state.value is not True and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.state.value is True
    for _ in range(10):
        w.stop()
    assert not w._thread.is_alive() and w.stopped


@pytest.mark.parametrize("kind", ["liveness", "startup"])
def test_on_hold_on_liveness_or_startup_check_failure(prober, kind):
    """TestOnHoldOnLivenessOrStartupCheckFailure (worker_test.go @ 632f162d)."""
    w = new_worker(kind, success_threshold=1, failure_threshold=1)
    prober.result = FAILURE
    assert w.do_probe() is True and w.state.value is False and w.on_hold
    prober.result = SUCCESS  # while on hold: not probed, still Failure
    assert w.do_probe() is True and w.state.value is False and w.on_hold
    w = new_worker(kind, success_threshold=1, failure_threshold=1)  # a new container
    assert w.do_probe() is True and w.state.value is True
    assert w.on_hold is (kind == "startup"), "startup holds after success too"


def test_result_run_on_liveness_check_failure(prober):
    """TestResultRunOnLivenessCheckFailure (worker_test.go @ 632f162d)."""
    w = new_worker("liveness", success_threshold=1, failure_threshold=3)
    assert w.do_probe() and w.state.value is True and w.state.run == 1
    prober.result = FAILURE
    assert w.do_probe() and w.state.value is True and w.state.run == 1
    assert w.do_probe() and w.state.value is True and w.state.run == 2
    assert w.do_probe() and w.state.value is False and w.state.run == 0


def test_result_run_on_startup_check_failure(prober):
    """TestResultRunOnStartupCheckFailure (worker_test.go @ 632f162d)."""
    prober.result = FAILURE
    w = new_worker("startup", success_threshold=1, failure_threshold=3)
    assert w.do_probe() and w.state.value is None and w.state.run == 1
    assert w.do_probe() and w.state.value is None and w.state.run == 2
    assert w.do_probe() and w.state.value is False and w.state.run == 0


def test_liveness_probe_disabled_by_started(prober):
    """TestLivenessProbeDisabledByStarted (worker_test.go @ 632f162d)."""
    prober.result = FAILURE
    w = new_worker("liveness", started=False, success_threshold=1, failure_threshold=1)
    assert w.do_probe() and w.state.value is True and prober.calls == 0
    w.gate.value = True
    assert w.do_probe() and w.state.value is False


def test_startup_probe_disabled_by_started(prober):
    """TestStartupProbeDisabledByStarted (worker_test.go @ 632f162d)."""
    prober.result = FAILURE
    w = new_worker("startup", success_threshold=1, failure_threshold=2)
    assert w.do_probe() and w.state.value is None
    prober.result = SUCCESS
    assert w.do_probe() and w.state.value is True
    prober.result = FAILURE  # started: the startup probe no longer runs
    assert w.do_probe() and w.state.value is True


# ---- the code beside the tables ----------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_prober_errors_are_thrown_away(prober, kind):
    """worker.go doProbe @ 61ecc560: "Prober error, throw away the result." An error neither
    fails nor passes the probe and does not break a run of failures; prober.go retries it
    maxProbeRetries (3) times in the tick. (The lab counted errors as failures.)"""
    w = new_worker(kind, started=True, success_threshold=1, failure_threshold=3)
    seen = []
    w.on_result = lambda kind, result, value, changed: seen.append(result.errored) or True
    prober.result = ERROR
    for _ in range(5):
        assert w.do_probe() is True
    assert w.state.value is INITIAL[kind] and w.state.run == 0 and not w.on_hold
    assert prober.calls == 5 * 3 and seen == [True] * 5
    if kind == "startup":
        return
    prober.result = FAILURE
    w.do_probe(), w.do_probe()
    prober.result = ERROR
    w.do_probe()
    prober.result = FAILURE
    w.do_probe()
    assert w.state.value is False, "F F (error) F: three failures in a row"


def test_manual_trigger_probes_now_and_restarts_the_period(prober):
    """worker.go run() @ 61ecc560: a manual trigger probes at once and resets the ticker."""
    w = new_worker("readiness", ran_s=0, period_seconds=0.6)
    times = []
    w.on_result = lambda *a: times.append(time.monotonic()) or True
    t0 = time.monotonic()
    w.start()
    try:
        time.sleep(0.3)  # the first probe (at once); on its own the next would be at 0.6 s
        w.trigger()
        deadline = time.monotonic() + 3
        while len(times) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        w.stop()
    first, manual, after = (t - t0 for t in times[:3])
    assert manual - first >= 0.25 and manual < 0.55, "the trigger probes at once"
    gap = after - manual  # 0.3 s on the old schedule, 0.6 s once the ticker is reset
    assert 0.45 <= gap < 1.2, f"the period restarts at the trigger: {times}"
