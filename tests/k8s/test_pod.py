"""Pods over real processes: readiness, liveness restarts, back-off, startupProbe, termination."""

from __future__ import annotations

import sys
import time
import urllib.request

import psutil
import pytest

from labsupport.k8s import Exec, HTTPGet, Pod, PodSpec, Port, Probe, Sleep, TCPSocket, Timing
from labsupport.k8s.container import Container
from labsupport.k8s.spec import expand

pytestmark = pytest.mark.timeout(60)

SERVER = [sys.executable, "-m", "labsupport.k8s.demo_server", "--port", "$(PORT)"]
FAST = Timing(time_scale=0.1)


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.fixture
def no_leftovers():
    before = _children()
    yield
    deadline = time.monotonic() + 5
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _children() - before, "a pod left a process behind"


def _post(pod: Pod, path: str) -> None:
    urllib.request.urlopen(f"http://127.0.0.1:{pod.port}{path}", data=b"", timeout=5).read()


def _serving(pod: Pod) -> bool:
    """The demo server has installed its SIGTERM handler and bound its port."""
    return "listening on" in pod.logs()


class Recorder:
    """Every event occurrence with its time, as a notebook's live display would see it."""

    def __init__(self):
        self.seen: list[tuple[float, str, str]] = []

    def __call__(self, event):
        self.seen.append((time.monotonic(), event.reason, event.message))

    def times(self, reason: str, contains: str = "") -> list[float]:
        return [t for t, r, m in self.seen if r == reason and contains in m]


def test_readiness_failure_unreadies_without_restart(no_leftovers):
    spec = PodSpec(
        SERVER,
        ports=[Port(8000, "http")],
        readiness_probe=Probe(HTTPGet("/ready", "http"), period_seconds=1, failure_threshold=2),
    )
    with Pod("ready-0", spec, timing=FAST) as pod:
        assert pod.wait_ready(20)
        _post(pod, "/admin/fault/unready")
        assert pod.wait_for(lambda p: not p.ready, 5)
        time.sleep(0.5)
        assert pod.restart_count == 0 and pod.status == "Running", "readiness never restarts"
        _post(pod, "/admin/fault/ready")
        assert pod.wait_ready(5)
        messages = [e.message for e in pod.events if e.reason == "Unhealthy"]
        assert any(
            "Readiness probe failed: HTTP probe failed with statuscode: 503" in m for m in messages
        )


def test_liveness_failure_kills_and_restarts(no_leftovers):
    rec = Recorder()
    spec = PodSpec(
        SERVER,
        ports=[Port(8000)],
        liveness_probe=Probe(HTTPGet("/health", 8000), period_seconds=1, failure_threshold=2),
        startup_probe=Probe(TCPSocket(8000), period_seconds=1, failure_threshold=100),
    )
    with Pod("live-0", spec, timing=FAST, on_event=rec) as pod:
        assert pod.wait_for(lambda p: p.started, 10)  # the port is open: serving from here
        first_pid = pod.pid
        _post(pod, "/admin/fault/hang")
        assert pod.wait_for(lambda p: p.restart_count == 1 and p.state == "Running", 10)
        assert pod.pid != first_pid
        assert pod.last_state.exit_code == 143 and pod.last_state.reason == "Error"
        status = pod.status_dict()["containerStatuses"][0]
        assert status["restartCount"] == 1 and "running" in status["state"]
        assert status["lastState"]["terminated"]["exitCode"] == 143
        reasons = [r for _, r, _ in rec.seen]
        kill = reasons.index("Killing")
        assert reasons[kill - 1] == "Unhealthy" and "Signal" in reasons[kill:]
        assert "Started" in reasons[kill:]
        text = pod.describe()
        for needle in (
            "Restart Count:  1",
            "Exit Code:    143",
            "Liveness:       http-get",
            "failed liveness probe, will be restarted",
            "Liveness probe failed",
        ):
            assert needle in text


def test_crash_loop_back_off_doubles(no_leftovers):
    rec = Recorder()
    timing = Timing(time_scale=0.05)  # back-off 0, 0.5 s, 1 s, 2 s
    spec = PodSpec([sys.executable, "-c", "import sys; print('crash'); sys.exit(1)"])
    with Pod("crash-0", spec, timing=timing, on_event=rec) as pod:
        assert pod.wait_for(lambda p: p.restart_count >= 4, 15)
        assert pod.status in ("CrashLoopBackOff", "Running", "Error")
        assert pod.last_state.exit_code == 1
        assert pod.logs(previous=True) == "crash"
    starts = rec.times("Started")
    backoffs = rec.times("BackOff")
    assert len(starts) >= 5 and len(backoffs) >= 3
    waits = [min(s for s in starts if s > b) - b for b in backoffs[:3]]
    for got, want in zip(waits, (0.5, 1.0, 2.0), strict=False):
        assert want - 0.02 <= got < want + 0.4, (waits, "expected 10 s, 20 s, 40 s x 0.05")
    assert starts[1] - starts[0] < 0.5, "the first restart is immediate"


def test_back_off_schedule_is_the_kubelets():
    assert [Timing(time_scale=1).backoff_s(n) for n in range(1, 9)] == [
        0,
        10,
        20,
        40,
        80,
        160,
        300,
        300,
    ]
    assert Timing(time_scale=0.1).backoff_s(3) == pytest.approx(2.0)


def _slow_start_spec(startup: bool) -> PodSpec:
    """A server that needs 1.5 s before its port opens (weights loading)."""
    return PodSpec(
        [*SERVER, "--start-delay-s", "1.5"],
        ports=[Port(8000)],
        liveness_probe=Probe(HTTPGet("/health", 8000), period_seconds=1, failure_threshold=3),
        startup_probe=Probe(TCPSocket(8000), period_seconds=1, failure_threshold=40)
        if startup
        else None,
    )


def test_liveness_only_kills_a_slow_starter(no_leftovers):
    with Pod("slow-0", _slow_start_spec(startup=False), timing=FAST) as pod:
        assert pod.wait_for(lambda p: p.restart_count >= 2, 10)
        assert pod.last_state.exit_code == 143, "killed by SIGTERM while still loading"
        assert "listening" not in pod.logs(previous=True)
        assert any("failed liveness probe" in e.message for e in pod.events)


def test_undersized_startup_probe_kills_with_its_own_grace_period(no_leftovers):
    rec = Recorder()
    # 1 s + 3 x 0.1 s of budget for a 3 s load; the initial delay lets the interpreter install
    # its SIGTERM handler first, so the kill has to wait for the grace period
    too_short = Probe(
        TCPSocket(8000),
        initial_delay_seconds=10,
        period_seconds=1,
        failure_threshold=3,
        termination_grace_period_seconds=1,
    )
    spec = PodSpec(
        [*SERVER, "--start-delay-s", "3", "--on-sigterm", "ignore"],
        ports=[Port(8000)],
        startup_probe=too_short,
        termination_grace_period_seconds=30,
    )
    with Pod("slow-2", spec, timing=FAST, on_event=rec) as pod:
        assert pod.wait_for(lambda p: p.restart_count >= 1, 10)
        assert pod.last_state.exit_code == 137, "SIGTERM ignored: killed at the probe's grace"
    assert any("failed startup probe, will be restarted" in m for _, _, m in rec.seen)
    t_kill = rec.times("Killing")[0]
    assert 0.1 - 0.02 <= rec.times("Signal", "SIGKILL")[0] - t_kill < 0.5, (
        "the probe's terminationGracePeriodSeconds (1 s), not the pod's 30 s"
    )


def test_startup_probe_gates_liveness_then_liveness_still_works(no_leftovers):
    rec = Recorder()
    with Pod("slow-1", _slow_start_spec(startup=True), timing=FAST, on_event=rec) as pod:
        assert pod.wait_ready(10)
        assert pod.restart_count == 0
        ready_at = time.monotonic()
        liveness = next(w for w in pod._workers if w.kind == "liveness")
        first_liveness = liveness.results[0][0] if liveness.results else None
        assert first_liveness is None or first_liveness >= 1.4, "liveness ran during startup"
        assert rec.times("Unhealthy", "Startup probe failed"), "startup probe saw the load"
        assert not [t for t in rec.times("Unhealthy", "Liveness") if t < ready_at]
        _post(pod, "/admin/fault/hang")
        assert pod.wait_for(lambda p: p.restart_count == 1, 10), "a later hang is still caught"


def test_termination_prestop_counts_against_grace(no_leftovers):
    rec = Recorder()
    spec = PodSpec(
        [*SERVER, "--on-sigterm", "ignore"],
        ports=[Port(8000)],
        pre_stop=Sleep(2),
        termination_grace_period_seconds=5,
    )
    with Pod("term-0", spec, timing=FAST, on_event=rec) as pod:
        assert pod.wait_for(_serving, 10)
        pod.delete()
        assert pod.status == "Terminating" and not pod.ready
        assert pod.done.wait(5)
        assert pod.last_state.exit_code == 137
    t_kill = rec.times("Killing")[0]
    t_term = rec.times("Signal", "SIGTERM")[0]
    t_sigkill = rec.times("Signal", "SIGKILL")[0]
    assert 0.2 - 0.02 <= t_term - t_kill < 0.45, "SIGTERM comes after the 2 s preStop sleep"
    assert 0.5 - 0.02 <= t_sigkill - t_kill < 0.8, "SIGKILL 5 s after preStop *started*"


def test_prestop_longer_than_grace_gets_the_2s_extension(no_leftovers):
    rec = Recorder()
    spec = PodSpec(
        [*SERVER, "--on-sigterm", "ignore"],
        ports=[Port(8000)],
        pre_stop=Sleep(30),
        termination_grace_period_seconds=5,
    )
    with Pod("term-1", spec, timing=FAST, on_event=rec) as pod:
        assert pod.wait_for(_serving, 10)
        pod.delete()
        assert pod.done.wait(5)
    t_kill = rec.times("Killing")[0]
    assert 0.5 - 0.02 <= rec.times("Signal", "SIGTERM")[0] - t_kill < 0.75
    assert 0.7 - 0.02 <= rec.times("Signal", "SIGKILL")[0] - t_kill < 1.0


def test_draining_server_exits_cleanly_and_exec_prestop_sees_env(no_leftovers):
    hook = Exec(
        [
            sys.executable,
            "-c",
            "import os, urllib.request; urllib.request.urlopen("
            "'http://127.0.0.1:' + os.environ['PORT'] + '/admin/fault/unready', b'')",
        ]
    )
    spec = PodSpec(
        [*SERVER, "--on-sigterm", "drain"],
        ports=[Port(8000)],
        pre_stop=hook,
        termination_grace_period_seconds=30,
    )
    with Pod("drain-0", spec, timing=FAST) as pod:
        assert pod.wait_for(_serving, 10)
        pod.delete()
        assert pod.done.wait(5)
        assert pod.last_state.exit_code == 0 and pod.status == "Completed"
        assert "POST /admin/fault/unready" in pod.logs()
        assert not any("SIGKILL" in e.message for e in pod.events)


def test_missing_executable_is_a_start_error(no_leftovers):
    with Pod("bad-0", PodSpec(["/no/such/binary"]), timing=FAST) as pod:
        assert pod.wait_for(lambda p: p.restart_count >= 1, 5)
        assert pod.last_state.reason == "StartError" and pod.last_state.exit_code == 128
        assert any(e.reason == "Failed" for e in pod.events)


def test_container_exit_codes_follow_the_runtime():
    c = Container([sys.executable, "-c", "import time; time.sleep(30)"], env=None)
    c.sigterm()
    assert c.wait(5) and c.exit_code == 143
    assert expand("$(PORT)/$$(PORT)/$(UNSET)", {"PORT": "1"}) == "1/$(PORT)/$(UNSET)"
