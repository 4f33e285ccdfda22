import json

import httpx
import pytest

from labsupport.serving.launcher import serve_subprocess

from .helpers import heartbeat, metric, read_tokens, wait_until


@pytest.fixture(scope="module")
def srv():
    with serve_subprocess("--min-step-ms", "5", "--max-model-len", "256") as server:
        with httpx.Client(base_url=server.base_url, timeout=10.0, trust_env=False) as client:
            server.client = client
            yield server


def _idle(srv):
    wait_until(lambda: heartbeat(srv.client, srv.base_url)["pending"] == 0, what="engine idle")


def test_models_health_ready(srv):
    c = srv.client
    assert srv.base_url.startswith("http://127.0.0.1:")
    models = c.get("/v1/models").json()
    assert models["data"][0]["id"] == "srelab-tiny" and models["data"][0]["max_model_len"] == 256
    assert c.get("/health").status_code == 200
    assert c.get("/ready").json() == {"ready": True, "accepting": True}
    assert c.get("/nope").status_code == 404


def test_non_streaming_completion(srv):
    body = {"prompt": "Hello", "max_tokens": 7, "temperature": 0}
    r = srv.client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["id"].startswith("cmpl-") and data["object"] == "text_completion"
    assert data["choices"][0]["finish_reason"] == "length" and data["choices"][0]["text"]
    assert data["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
                             "prompt_tokens_details": None}  # fmt: skip
    again = srv.client.post("/v1/completions", json=body).json()
    assert again["choices"][0]["text"] == data["choices"][0]["text"]  # greedy: deterministic


def test_streaming_completion_is_server_sent_events(srv):
    body = {"prompt": "Hello", "max_tokens": 6, "stream": True, "temperature": 0,
            "stream_options": {"include_usage": True}}  # fmt: skip
    with srv.client.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    tokens, usage = chunks[:-1], chunks[-1]
    assert len(tokens) == 6 and [c["choices"][0]["finish_reason"] for c in tokens][-1] == "length"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 6
    full = srv.client.post(
        "/v1/completions", json={**body, "stream": False, "stream_options": None}
    )
    assert "".join(c["choices"][0]["text"] for c in tokens) == full.json()["choices"][0]["text"]


@pytest.mark.parametrize(
    ("content", "status", "param"),
    [
        (b"{oops", 400, None),
        (json.dumps({"prompt": "x", "max_token": 5}).encode(), 400, "max_token"),
        (json.dumps({"prompt": "x", "max_tokens": -5}).encode(), 400, "max_tokens"),
        (json.dumps({"prompt": "x", "max_tokens": 10**6}).encode(), 400, "input_tokens"),
        (json.dumps({"prompt": ""}).encode(), 400, "prompt"),
        (json.dumps({"prompt": "x" * 300}).encode(), 400, "input_tokens"),
        (json.dumps({"prompt": [1, 4096]}).encode(), 400, "prompt"),
        (json.dumps({"prompt": "x", "model": "other"}).encode(), 404, "model"),
    ],
    ids=["json", "unknown", "negative", "huge", "empty", "long", "vocab", "model"],
)
def test_bad_requests_get_openai_errors(srv, content, status, param):
    before = metric(srv.client, srv.base_url, "srelab:rejected_requests_total")
    r = srv.client.post(
        "/v1/completions", content=content, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == status and err["param"] == param and err["message"]
    assert metric(srv.client, srv.base_url, "srelab:rejected_requests_total") == before + 1


def test_only_json_bodies_are_read(srv):
    for headers in ({}, {"Content-Type": "application/x-www-form-urlencoded"}):
        r = srv.client.post("/v1/completions", content=b'{"prompt": "x"}', headers=headers)
        assert r.status_code == 400 and "application/json" in r.json()["error"]["message"]


def test_metrics_endpoint(srv):
    r = srv.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    names = [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
        "srelab:wasted_decode_steps_total",
        "srelab:engine_steps_total",
        "srelab:startup_phase_seconds",
    ]
    for name in names:
        assert f"\n{name}" in r.text, name


def test_heartbeat(srv):
    hb = heartbeat(srv.client, srv.base_url)
    assert hb["alive"] and {"step_count", "pending", "kv_blocks_used"} <= set(hb)


def _waste(srv):
    return metric(srv.client, srv.base_url, "srelab:wasted_decode_steps_total")


def test_disconnect_mid_stream_aborts_and_frees_blocks(srv):
    _idle(srv)
    c, u = srv.client, srv.base_url
    waste0 = _waste(srv)
    gone0 = metric(c, u, "srelab:client_disconnects_total")
    aborted0 = metric(c, u, "vllm:request_success_total", finished_reason="abort")
    _, texts = read_tokens(c, u, 3, max_tokens=200)
    assert len(texts) == 3
    _idle(srv)
    assert metric(c, u, "vllm:request_success_total", finished_reason="abort") == aborted0 + 1
    assert metric(c, u, "srelab:client_disconnects_total") == gone0 + 1
    assert _waste(srv) - waste0 <= 2  # the abort lands at the next step boundary
    assert metric(c, u, "srelab:kv_cache_blocks_used") == 0


def test_without_cancellation_the_engine_decodes_for_nobody(srv):
    _idle(srv)
    c, u = srv.client, srv.base_url
    srv.set_fault("no_cancel_on_disconnect")
    try:
        waste0 = _waste(srv)
        read_tokens(c, u, 3, max_tokens=100)
        assert heartbeat(c, u)["pending"] == 1  # still generating, nobody reading
        _idle(srv)
        assert _waste(srv) - waste0 >= 90  # every token after the third was for nobody
        assert metric(c, u, "srelab:kv_cache_blocks_used") == 0  # freed at max_tokens only
    finally:
        srv.set_fault("no_cancel_on_disconnect", enabled=False)


def test_non_streaming_client_timeout_aborts_too(srv):
    _idle(srv)
    c, u = srv.client, srv.base_url
    aborted0 = metric(c, u, "vllm:request_success_total", finished_reason="abort")
    with pytest.raises(httpx.ReadTimeout):
        c.post("/v1/completions", json={"prompt": "x", "max_tokens": 240}, timeout=0.3)
    wait_until(
        lambda: metric(c, u, "vllm:request_success_total", finished_reason="abort") == aborted0 + 1,
        timeout_s=5,
        what="abort after the client timed out",
    )
    _idle(srv)
    assert metric(c, u, "srelab:kv_cache_blocks_used") == 0
