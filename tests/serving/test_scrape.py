"""Scrapes of /metrics: the hard deadline, failures, reading samples, made-up scrapes."""

import time

import pytest

from labsupport.serving.launcher import serve_subprocess
from labsupport.serving.scrape import Scrape, no_answer, scrape_metrics, synthetic
from tests.serving.scrape_helpers import FakeMetrics, silent_listener

pytestmark = pytest.mark.timeout(60)


def test_value_reads_a_sample_and_none_when_absent_or_failed():
    s = Scrape.from_text('vllm:num_requests_waiting{model_name="m"} 3.0\n')
    assert s.ok and s.value("vllm:num_requests_waiting") == 3.0
    assert s.value("vllm:num_requests_waiting", model_name="other") is None
    assert s.value("nope") is None
    assert no_answer().value("vllm:num_requests_waiting") is None
    assert "scrape failed" in no_answer().describe()


def test_synthetic_uses_the_server_names():
    s = synthetic(10, running=2, waiting=3, alive=False)
    assert s.value("srelab:engine_steps_total") == 10
    assert s.value("vllm:num_requests_running") == 2
    assert s.value("vllm:num_requests_waiting") == 3
    assert s.value("srelab:engine_alive") == 0
    assert s.value("vllm:generation_tokens_total") == 20


def test_nothing_listening_is_connection_refused():
    with silent_listener() as port:
        pass  # closed again: nothing listens on it now
    s = scrape_metrics(f"http://127.0.0.1:{port}", timeout_s=0.5)
    assert not s.ok and s.error == "connection refused"


def test_a_listener_that_never_answers_times_out_at_the_deadline():
    with silent_listener() as port:
        t0 = time.monotonic()
        s = scrape_metrics(f"http://127.0.0.1:{port}", timeout_s=0.4)
        took = time.monotonic() - t0
    assert not s.ok and "timed out" in s.error
    assert 0.35 <= took < 1.0


def test_the_deadline_covers_the_whole_exchange():
    with FakeMetrics() as fake:
        fake.steps = 7
        assert scrape_metrics(fake.url, 1.0).value("srelab:engine_steps_total") == 7
        fake.delay_s = 1.0
        t0 = time.monotonic()
        s = scrape_metrics(fake.url, 0.3)
        assert not s.ok and time.monotonic() - t0 < 0.8


def test_scrape_of_the_real_server():
    with serve_subprocess() as srv:
        s = scrape_metrics(srv.base_url, 2.0)
    assert s.ok and s.status == 200
    assert s.value("srelab:engine_alive") == 1.0
    assert s.value("srelab:engine_steps_total") == 0.0
