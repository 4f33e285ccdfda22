"""Probe handlers against real processes (timing and thresholds: test_probe_worker.py)."""

from __future__ import annotations

import subprocess
import sys
import threading

import psutil
import pytest

from labsupport.k8s.probes import (
    Call,
    Exec,
    HTTPGet,
    ProbeTarget,
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
    result = run_probe(TCPSocket(9999), named, timeout_s=1)  # nobody listens there: a failure
    assert not result.ok and not result.errored and "connection refused" in result.message
    assert "not a declared container port" in result.message
    unknown = run_probe(HTTPGet("/health", "metrics"), named, timeout_s=1)  # a prober error
    assert unknown.errored and unknown.state == "unknown" and "invalid syntax" in unknown.message


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
    assert not missing.ok and missing.errored, "cannot start: a prober error, not a failure"
    assert "executable file not found" in missing.message


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
