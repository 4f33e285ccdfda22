"""Peer cases that need a real container: the kubelet's probe semantics, end to end in a Pod.

Each case follows the kubelet code it cites (the unit-level ports are in the other files):
pkg/kubelet/prober/worker.go at 61ecc560357a1af440735b32ddcf4ee143c0d0ea (doProbe throws
prober errors away; liveness and startup stop on deletion, readiness goes on) and
pkg/kubelet/prober/prober_manager.go at 0181833dbbd0083d674ff7e5496537d7b5a7b856
(UpdatePodStatus triggers readiness as soon as the container has started). The container is a
Python process that sleeps; the probes are cheap, so each case takes about a second.
"""

from __future__ import annotations

import sys
import time

import pytest

from labsupport.k8s import Call, Exec, Pod, PodSpec, Probe, Sleep

pytestmark = pytest.mark.timeout(60)
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_an_exec_probe_that_cannot_run_never_restarts_the_container():
    """worker.go doProbe: "Prober error, throw away the result." An exec liveness probe whose
    binary does not exist is an error (CRI: executable file not found), not a failure: the
    container is never restarted, and the kubelet records "Liveness probe errored"."""
    probe = Probe(Exec(["no-such-binary-xyz"]), period_seconds=1, failure_threshold=1)
    spec = PodSpec(command=SLEEPER, liveness_probe=probe)
    with Pod("errored", spec, time_scale=0.05) as pod:
        assert pod.wait_ready(timeout_s=10)
        time.sleep(0.8)  # some 16 ticks of a failureThreshold-1 liveness probe
        messages = [e.message for e in pod.events if e.reason == "Unhealthy"]
        assert pod.restart_count == 0 and pod.state == "Running"
        assert not any(e.reason == "Killing" for e in pod.events)
    assert messages and all(
        m.startswith("Liveness probe errored and resulted in unknown state: ") for m in messages
    )
    assert "executable file not found" in messages[0]


def test_readiness_is_probed_as_soon_as_the_startup_probe_succeeds():
    """prober_manager.go UpdatePodStatus: once started, a not-yet-ready container's readiness
    probe is triggered at once, not at its next period (the lab waited a period)."""
    t0 = time.monotonic()
    startup = Probe(Call(lambda t: time.monotonic() - t0 > 0.4), period_seconds=2)
    readiness = Probe(Call(lambda t: True), period_seconds=100)  # 5 s at time_scale 0.05
    spec = PodSpec(command=SLEEPER, startup_probe=startup, readiness_probe=readiness)
    with Pod("triggered", spec, time_scale=0.05) as pod:
        assert pod.wait_for(lambda p: p.started, timeout_s=10)
        started = time.monotonic()
        assert pod.wait_ready(timeout_s=10)
        lag = time.monotonic() - started
    assert lag < 1.0, f"ready {lag:.2f} s after the startup probe succeeded (period 5 s)"


def test_deletion_stops_liveness_and_startup_but_not_readiness():
    """TestDoProbe's "Pod deletion" case (worker_test.go @ 632f162d): with a deletion
    timestamp liveness and startup stop (and kill nothing), readiness goes on probing."""
    calls = {"liveness": 0, "readiness": 0}

    def counting(kind, ok):
        def fn(target):
            calls[kind] += 1
            return ok

        return fn

    spec = PodSpec(
        command=SLEEPER,
        liveness_probe=Probe(Call(counting("liveness", False)), period_seconds=1,
                             failure_threshold=1000),
        readiness_probe=Probe(Call(counting("readiness", True)), period_seconds=1),
        pre_stop=Sleep(20),  # terminating for 1 s at time_scale 0.05
        termination_grace_period_seconds=30,
    )  # fmt: skip
    with Pod("deleted", spec, time_scale=0.05) as pod:
        assert pod.wait_ready(timeout_s=10)
        pod.delete()
        time.sleep(0.2)
        before = dict(calls)
        time.sleep(0.4)  # still in the preStop sleep
        assert not pod.done.is_set()
        after = dict(calls)
    assert after["liveness"] == before["liveness"], "liveness stopped with the deletion"
    assert after["readiness"] > before["readiness"], "readiness goes on while terminating"
    assert pod.restart_count == 0
