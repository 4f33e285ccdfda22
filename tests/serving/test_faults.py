import statistics
import subprocess
import time

import httpx
import psutil
import pytest

from labsupport.serving.faults import FAULTS, FaultController, parse_spec
from labsupport.serving.launcher import child_env, serve_subprocess, server_command, stop_group

from .helpers import free_port, heartbeat, read_tokens, tcp_connects, wait_until


def test_specs_and_controller():
    assert parse_spec("slow_start=2.5") == ("slow_start", 2.5)
    assert parse_spec("wedged_engine") == ("wedged_engine", None)
    with pytest.raises(ValueError, match="unknown fault"):
        parse_spec("nope")
    faults = FaultController.from_specs(["slow_start", "gil_busy_loop=0"])
    assert faults.value("slow_start") == FAULTS["slow_start"].default
    faults.enable("wedged_engine")
    faults.disable("wedged_engine")
    assert set(faults.active()) == {"slow_start", "gil_busy_loop"}
    faults.shutdown()
    assert not faults.is_active("gil_busy_loop")
    with pytest.raises(ValueError):
        faults.enable("nope")


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("blocked_event_loop", 1e9, r"in \[0, 60\]"),  # a loop deaf to SIGTERM for good
        ("blocked_event_loop", float("nan"), "in"),
        ("slow_start", float("inf"), "in"),
        ("gil_busy_loop", -1, "in"),
        ("gil_busy_loop", True, "a number"),
        ("slow_start", "5", "a number"),
        ("wedged_engine", 3, "takes no value"),
    ],
)
def test_fault_values_are_bounded(name, value, why):
    with pytest.raises(ValueError, match=why):
        FaultController().enable(name, value)
    if not isinstance(value, str):  # the command line's "--fault slow_start=5" is text
        with pytest.raises(ValueError):
            parse_spec(f"{name}={value}")


@pytest.fixture(scope="module")
def srv():
    with serve_subprocess("--max-model-len", "256") as server:
        with httpx.Client(base_url=server.base_url, timeout=10.0, trust_env=False) as client:
            server.client = client
            yield server


def _fault(srv, name, value=None, enabled=True, timeout_s=10.0):
    srv.set_fault(name, value, enabled=enabled, timeout_s=timeout_s)


def _latency_s(call, n=5, stat=statistics.median):
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return stat(samples)


def _infer(srv, max_tokens=16, timeout_s=10.0):
    body = {"prompt": "Hello", "max_tokens": max_tokens, "temperature": 0}
    r = srv.client.post("/v1/completions", json=body, timeout=timeout_s)
    assert r.status_code == 200


def _cpu_s(pid, window_s=1.0):
    proc = psutil.Process(pid)
    before = sum(proc.cpu_times()[:2])
    time.sleep(window_s)
    return sum(proc.cpu_times()[:2]) - before


def test_gil_spinning_thread_burns_cpu_while_health_passes(srv):
    # What top shows: an idle server at 100% CPU. (Latency rises too, by how much depends on
    # how busy the machine is; the GIL-holding variant below is the one that stalls probes.)
    idle = _cpu_s(srv.pid)
    _fault(srv, "gil_busy_loop")
    try:
        spinning = _cpu_s(srv.pid)
        assert srv.client.get("/health").status_code == 200
        _infer(srv)
    finally:
        _fault(srv, "gil_busy_loop", enabled=False)
    assert spinning > 0.25 and spinning > 5 * idle, (idle, spinning)


def test_gil_held_in_c_stalls_even_health(srv):
    def health():
        assert srv.client.get("/health").status_code == 200

    # A probe waits for the C call to end, unless the OS has not yet rescheduled the spinner:
    # the mean sees the stalls where a median on a busy machine may not.
    base = _latency_s(health, n=10, stat=statistics.mean)
    _fault(srv, "gil_busy_loop", value=200)
    try:
        slow = _latency_s(health, n=10, stat=statistics.mean)
    finally:
        _fault(srv, "gil_busy_loop", enabled=False)
    assert slow > 5 * base and slow > 0.02, (base, slow)


def test_blocked_event_loop_fails_http_probes_but_not_tcp(srv):
    _fault(srv, "blocked_event_loop", value=1.0)
    try:
        outcomes = []
        for _ in range(4):
            assert tcp_connects(srv.port)
            try:
                srv.client.get("/health", timeout=0.3)
                outcomes.append("ok")
            except httpx.TimeoutException:
                outcomes.append("timeout")
        assert outcomes.count("timeout") >= 3, outcomes
    finally:
        _fault(srv, "blocked_event_loop", enabled=False, timeout_s=10.0)
    wait_until(lambda: srv.client.get("/health", timeout=1.0).status_code == 200, what="recovery")


def test_wedged_engine_passes_health_but_serves_nothing(srv):
    _fault(srv, "wedged_engine")
    try:
        with pytest.raises(httpx.ReadTimeout):
            _infer(srv, max_tokens=1, timeout_s=1.0)
        assert tcp_connects(srv.port)
        assert srv.client.get("/health").status_code == 200  # vLLM's /health cannot see this
        hb1 = heartbeat(srv.client, srv.base_url)
        time.sleep(0.3)
        hb2 = heartbeat(srv.client, srv.base_url)
        assert hb2["pending"] >= 1 and hb2["step_count"] == hb1["step_count"]
        assert hb2["last_step_age_s"] is None or hb2["last_step_age_s"] > 1.0
    finally:
        _fault(srv, "wedged_engine", enabled=False)
    wait_until(lambda: heartbeat(srv.client, srv.base_url)["pending"] == 0, what="unwedged")
    _infer(srv, max_tokens=2)


def test_leaked_blocks_stay_used_when_idle(srv):
    _fault(srv, "leak_kv_on_abort")
    try:
        read_tokens(srv.client, srv.base_url, 2, max_tokens=100, prompt="x" * 40)
        wait_until(lambda: heartbeat(srv.client, srv.base_url)["pending"] == 0, what="idle")
        assert heartbeat(srv.client, srv.base_url)["kv_blocks_used"] >= 3
    finally:
        _fault(srv, "leak_kv_on_abort", enabled=False)


def test_slow_start_keeps_the_port_closed_until_loaded():
    port = free_port()
    cmd = server_command("--fault", "slow_start=1.5", port=port)
    proc = subprocess.Popen(
        cmd,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        t0 = time.monotonic()
        refused = 0
        while not tcp_connects(port, timeout_s=0.2):
            refused += 1
            assert proc.poll() is None and time.monotonic() - t0 < 60
            time.sleep(0.05)
        waited = time.monotonic() - t0
        assert refused > 10 and waited >= 1.5
        assert httpx.get(f"http://127.0.0.1:{port}/health", trust_env=False).status_code == 200
    finally:
        stop_group(proc)
        out = proc.stdout.read()
        proc.stdout.close()
    assert '"slow_start_s": 1.5' in out


def test_unvalidated_token_ids_kill_the_engine_for_good():
    with serve_subprocess("--fault", "no_input_validation") as srv:
        with httpx.Client(base_url=srv.base_url, timeout=10.0, trust_env=False) as c:
            assert (
                c.post("/v1/completions", json={"prompt": "ok", "max_tokens": 2}).status_code == 200
            )
            r = c.post("/v1/completions", json={"prompt": [1, 600], "max_tokens": 2})
            assert r.status_code == 500 and r.json()["error"]["code"] == 500
            wait_until(lambda: c.get("/health").status_code == 503, what="health reports it")
            r = c.post("/v1/completions", json={"prompt": "ok", "max_tokens": 2})
            assert r.status_code == 503  # sticky: good input fails too until a restart
            assert c.get("/ready").status_code == 503
    assert "engine loop died" in srv.output and "IndexError" in srv.output
