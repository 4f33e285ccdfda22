"""Probe handlers against real processes, the threshold logic, and probe timing."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time

import psutil
import pytest

from labsupport.k8s.events import Timing
from labsupport.k8s.probes import (
    Call,
    Exec,
    HTTPGet,
    Probe,
    ProbeState,
    ProbeTarget,
    ProbeWorker,
    TCPSocket,
    run_probe,
)
from labsupport.k8s.spec import free_port

pytestmark = pytest.mark.timeout(60)

# listens but never accepts: the kernel still completes TCP handshakes from the backlog
WEDGED = """
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
print("listening", flush=True); time.sleep(120)
"""


def _start(argv: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert "listening" in proc.stdout.readline(), "the test server did not start"
    return proc


@pytest.fixture(scope="module")
def answering():
    port = free_port()
    cmd = [sys.executable, "-m", "labsupport.k8s.demo_server", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "listening" in line:
            break
    yield ProbeTarget(ports={8000: port})
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def wedged():
    port = free_port()
    proc = _start([sys.executable, "-c", WEDGED, str(port)], port)
    yield ProbeTarget(ports={8000: port})
    proc.kill()
    proc.wait()


@pytest.fixture
def closed():
    return ProbeTarget(ports={8000: free_port()})  # nobody listens there


@pytest.mark.parametrize(
    "code,ok", [(200, True), (302, True), (399, True), (400, False), (503, False)]
)
def test_http_probe_success_is_200_to_399(answering, code, ok):
    result = run_probe(HTTPGet(f"/status/{code}", 8000), answering, timeout_s=5)
    assert result.ok is ok, result.message
    if not ok:
        assert result.message.startswith(f"HTTP probe failed with statuscode: {code}")


def test_http_probe_times_out_on_a_wedged_server_that_tcp_calls_healthy(wedged):
    tcp = run_probe(TCPSocket(8000), wedged, timeout_s=1)
    http = run_probe(HTTPGet("/health", 8000), wedged, timeout_s=0.5)
    assert tcp.ok, "the handshake completes from the listen backlog even though nobody accepts"
    assert not http.ok and "context deadline exceeded" in http.message
    assert 0.45 <= http.duration_s < 1.5


def test_probes_on_a_closed_port_fail_with_connection_refused(closed):
    for handler in (TCPSocket(8000), HTTPGet("/", 8000)):
        result = run_probe(handler, closed, timeout_s=1)
        assert not result.ok and "connect: connection refused" in result.message


def test_probe_port_by_name_and_undeclared_port(answering):
    named = ProbeTarget(ports={**answering.ports, "http": answering.ports[8000]})
    assert run_probe(HTTPGet("/health", "http"), named, timeout_s=5).ok
    result = run_probe(TCPSocket(9999), named, timeout_s=1)
    assert not result.ok and "not a declared container port" in result.message


def test_exec_probe_exit_code_output_and_timeout():
    target = ProbeTarget(env={"PATH": "/usr/bin:/bin", "GREETING": "hi"})
    ok = run_probe(
        Exec([sys.executable, "-c", "import os; print(os.environ['GREETING'])"]),
        target,
        timeout_s=10,
    )
    assert ok.ok and ok.message == "hi", "exec probes run with the container's environment"
    bad = run_probe(
        Exec([sys.executable, "-c", "import sys; print('boom'); sys.exit(2)"]), target, timeout_s=10
    )
    assert not bad.ok and bad.message == "boom"
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    slow = run_probe(
        Exec([sys.executable, "-c", "import time; time.sleep(30)"]), target, timeout_s=0.5
    )
    assert not slow.ok and "timed out" in slow.message and slow.duration_s < 3
    left = {p.pid for p in psutil.Process().children(recursive=True)} - children_before
    assert not left, "a timed-out exec probe must be killed"
    missing = run_probe(Exec(["no-such-binary-xyz"]), target, timeout_s=1)
    assert not missing.ok and "executable file not found" in missing.message


def test_call_probe_results_errors_and_timeouts():
    target = ProbeTarget(ports={8000: 1})
    assert run_probe(Call(lambda t: t.port == 1), target, 1).ok
    assert run_probe(Call(lambda t: (False, "queue too long")), target, 1).message == (
        "queue too long"
    )
    boom = run_probe(Call(lambda t: 1 / 0), target, 1)
    assert not boom.ok and "ZeroDivisionError" in boom.message
    release = threading.Event()
    stuck = Call(lambda t: release.wait(10), name="stuck")
    first = run_probe(stuck, target, 0.2)
    second = run_probe(stuck, target, 0.2)
    release.set()
    assert not first.ok and "timed out" in first.message
    assert not second.ok and "still running" in second.message


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
