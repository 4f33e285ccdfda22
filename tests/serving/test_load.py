"""Steady closed-loop traffic: it runs until stopped, records every outcome, leaves nothing."""

import threading
import time

import pytest

from labsupport.serving.launcher import serve_subprocess
from labsupport.serving.load import SteadyLoad
from tests.serving.scrape_helpers import silent_listener

pytestmark = pytest.mark.timeout(60)


def test_load_against_the_real_server():
    with serve_subprocess("--min-step-ms", "5") as srv:
        t0 = time.monotonic()
        with SteadyLoad(srv.base_url, concurrency=3, max_tokens=4) as load:
            assert load.wait_for_requests(6, timeout_s=30)
        assert not load.running
    counts = load.counts()
    assert counts["ok"] >= 6 and set(counts) <= {"ok", "cancelled"}  # cancelled: in flight at stop
    assert load.counts(since_s=time.monotonic() + 1) == {"ok": 0}
    assert all(t0 <= o.start_s <= o.end_s for o in load.outcomes)
    assert not [t for t in threading.enumerate() if t.name == "srelab-load"]


def test_failures_are_recorded_and_retried():
    with silent_listener() as port:
        pass
    with SteadyLoad(f"http://127.0.0.1:{port}", concurrency=1, retry_after_s=0.05) as load:
        assert load.wait_for_requests(3, timeout_s=10)
    assert load.counts()["error"] >= 3


def test_a_server_that_never_answers_times_out():
    with silent_listener() as port:
        load = SteadyLoad(f"http://127.0.0.1:{port}", concurrency=1, request_timeout_s=0.3)
        with load:
            assert load.wait_for_requests(1, timeout_s=10)
    assert load.counts()["timeout"] >= 1


def test_bad_arguments():
    with pytest.raises(ValueError):
        SteadyLoad("http://127.0.0.1:1", concurrency=0)
    load = SteadyLoad("http://127.0.0.1:1", concurrency=1, retry_after_s=1.0).start()
    with pytest.raises(RuntimeError):
        load.start()
    load.stop()


class _Gate:
    def __init__(self, limit):
        self.limit, self.in_flight, self.peak = limit, 0, 0

    def try_enter(self):
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return True

    def leave(self):
        self.in_flight -= 1


def test_a_gate_sheds_at_once_and_a_drain_lets_requests_finish():
    gate = _Gate(2)
    with serve_subprocess("--min-step-ms", "5") as srv:
        load = SteadyLoad(srv.base_url, concurrency=5, max_tokens=40, gate=gate, retry_after_s=0.05)
        with load:
            assert load.wait_for_requests(12, timeout_s=30)
            load.stop(drain_s=10.0)
    counts = load.counts()
    assert gate.peak == 2 and gate.in_flight == 0
    assert counts["http_429"] >= 3 and counts["ok"] >= 2
    assert "cancelled" not in counts  # drained: the two in flight finished
    shed = [o for o in load.outcomes if o.status == "http_429"]
    assert all(o.latency_s == 0 for o in shed)


def test_requests_in_flight_when_stopped_are_recorded_as_cancelled():
    with silent_listener() as port:
        load = SteadyLoad(f"http://127.0.0.1:{port}", concurrency=2, request_timeout_s=30)
        with load:
            time.sleep(0.3)
    assert load.counts() == {"ok": 0, "cancelled": 2}
