import asyncio

import pytest

from labsupport.serving.launcher import serve_subprocess
from labsupport.serving.loadgen import RequestResult, percentile, run_load, run_load_sync, summarize

from .helpers import free_port


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    xs = list(range(1, 101))  # 1..100
    assert percentile(xs, 50) == 50.5
    assert percentile(xs, 0) == 1 and percentile(xs, 100) == 100
    assert percentile(xs, 99) == pytest.approx(99.01)
    assert percentile([3, 1, 2], 50) == 2


def test_summary_counts_and_distributions():
    results = [
        RequestResult(0, "ok", 200, tokens=3, ttft_s=0.1, itl_s=[0.01, 0.03], e2e_s=0.2),
        RequestResult(1, "ok", 200, tokens=2, ttft_s=0.3, itl_s=[0.02], e2e_s=0.4),
        RequestResult(2, "http_error", 400),
    ]
    s = summarize(results, duration_s=1.0)
    assert s["by_status"] == {"http_error": 1, "ok": 2} and s["tokens"] == 5
    assert s["ttft_ms"]["p50"] == pytest.approx(200.0) and s["ttft_ms"]["n"] == 2
    assert s["itl_ms"]["max"] == pytest.approx(30.0) and s["e2e_ms"]["n"] == 2
    assert s["tokens_per_s"] == 5.0


@pytest.fixture(scope="module")
def url():
    with serve_subprocess("--min-step-ms", "2") as srv:
        yield srv.base_url


def test_streams_measure_ttft_and_itl(url):
    report = run_load_sync(url, num_requests=12, concurrency=4, max_tokens=10)
    s = report.summary
    assert s["by_status"] == {"ok": 12} and s["tokens"] == 120
    assert s["ttft_ms"]["n"] == 12 and s["itl_ms"]["n"] == 12 * 9
    assert 0 < s["ttft_ms"]["p50"] <= s["ttft_ms"]["p99"] <= s["ttft_ms"]["max"]
    assert all(r.text for r in report.results) and report.as_dict()["config"]["concurrency"] == 4


def test_non_streaming_and_errors_and_disconnects(url):
    plain = run_load_sync(url, num_requests=3, concurrency=3, max_tokens=5, stream=False)
    assert plain.summary["by_status"] == {"ok": 3} and plain.summary["tokens"] == 15
    bad = run_load_sync(url, num_requests=2, max_tokens=10**6)
    assert bad.summary["by_status"] == {"http_error": 2}
    assert bad.results[0].http_status == 400 and "maximum context" in bad.results[0].error
    gone = run_load_sync(url, num_requests=4, max_tokens=100, disconnect_after_tokens=3)
    assert gone.summary["by_status"] == {"client_disconnect": 4}
    assert [r.tokens for r in gone.results] == [3] * 4


def test_connection_errors_and_bounds():
    dead = run_load_sync(f"http://127.0.0.1:{free_port()}", num_requests=2, request_timeout_s=2)
    assert dead.summary["by_status"] == {"connection_error": 2}
    with pytest.raises(ValueError):
        run_load_sync("http://127.0.0.1:1", num_requests=0)


def test_time_bound_and_use_inside_a_running_loop(url):
    async def inside():  # as in Jupyter, where a loop is already running
        return run_load_sync(url, num_requests=2, max_tokens=400, total_timeout_s=0.3)

    report = asyncio.run(inside())
    assert report.summary["by_status"] == {"timeout": 2}
    assert report.summary["duration_s"] < 3
    direct = asyncio.run(run_load(url, num_requests=1, max_tokens=2))
    assert direct.summary["by_status"] == {"ok": 1}
