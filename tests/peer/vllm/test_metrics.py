"""Ported from vLLM tests/entrypoints/instrumentator/test_metrics.py at
20ef9d82bba54f88abb1bf906f97587f5e8be959, run against `srelab serve` (shared server).

Adapted: the counts are read as differences across the test (the server is shared with other
modules), and every expected family is checked, where vLLM's loop skips the families whose bare
name is not in EXPECTED_METRICS_V1 (it checks only vllm:iteration_tokens_total); a counter's
value is the sum over its finish reasons. Out of scope (docs/peer_scope.md): the multimodal
model parametrization (vllm:mm_cache_* are exported, at 0), the server-flag parametrizations
(--enable-chunked-prefill, --disable-frontend-multiprocessing, --show-hidden-metrics-for-version)
and test_metrics_exist_run_batch (vLLM's batch runner).
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import MODEL_NAME, tokenize

_PROMPT = "Hello my name is Robert and I love magic"

EXPECTED_METRICS_V1 = [
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prefix_cache_queries",
    "vllm:prefix_cache_hits",
    "vllm:num_preemptions_total",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:iteration_tokens_total",
    "vllm:cache_config_info",
    "vllm:request_success_total",
    *(f"vllm:{family}_{suffix}"
      for family in ("request_prompt_tokens", "request_generation_tokens", "request_params_n",
                     "request_params_max_tokens", "time_to_first_token_seconds",
                     "inter_token_latency_seconds", "e2e_request_latency_seconds",
                     "request_queue_time_seconds", "request_inference_time_seconds",
                     "request_prefill_time_seconds", "request_decode_time_seconds")
      for suffix in ("sum", "bucket", "count")),
]  # fmt: skip


def _get_expected_values(num_requests: int, prompt_ids: list[int], max_tokens: int):
    num_prompt_tokens = len(prompt_ids)
    return {
        "vllm:time_to_first_token_seconds": [("_count", num_requests)],
        "vllm:inter_token_latency_seconds": [("_count", num_requests * (max_tokens - 1))],
        "vllm:e2e_request_latency_seconds": [("_count", num_requests)],
        "vllm:request_queue_time_seconds": [("_count", num_requests)],
        "vllm:request_inference_time_seconds": [("_count", num_requests)],
        "vllm:request_prefill_time_seconds": [("_count", num_requests)],
        "vllm:request_decode_time_seconds": [("_count", num_requests)],
        "vllm:request_prompt_tokens": [("_sum", num_requests * num_prompt_tokens),
                                       ("_count", num_requests)],
        "vllm:request_generation_tokens": [("_sum", num_requests * max_tokens),
                                           ("_count", num_requests)],
        "vllm:request_params_n": [("_count", num_requests)],
        "vllm:request_params_max_tokens": [("_sum", num_requests * max_tokens),
                                           ("_count", num_requests)],
        "vllm:iteration_tokens_total": [("_sum", num_requests * (num_prompt_tokens + max_tokens)),
                                        ("_count", num_requests * max_tokens)],
        "vllm:prompt_tokens": [("_total", num_requests * num_prompt_tokens)],
        "vllm:generation_tokens": [("_total", num_requests * max_tokens)],
        "vllm:request_success": [("_total", num_requests)],
    }  # fmt: skip


def _scrape(server) -> dict[str, float]:
    response = httpx.get(server.url_for("metrics"), trust_env=False)
    assert response.status_code == HTTPStatus.OK
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if "le" not in sample.labels:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def test_metrics_counts(server, client):
    prompt_ids = tokenize(_PROMPT)
    num_requests, max_tokens = 10, 10
    before = _scrape(server)
    for _ in range(num_requests):
        client.completions.create(model=MODEL_NAME, prompt=prompt_ids, max_tokens=max_tokens)
    after = _scrape(server)
    for family, suffix_values in _get_expected_values(num_requests, prompt_ids,
                                                      max_tokens).items():  # fmt: skip
        for suffix, expected in suffix_values:
            name = f"{family}{suffix}"
            assert name in after, f"Did not find {name} in prom endpoint"
            got = after[name] - before.get(name, 0.0)
            assert got == expected, f"{name} expected {expected}, found {got}"


def test_metrics_exist(server, client):
    client.completions.create(model=MODEL_NAME, prompt="Hello, my name is", max_tokens=5,
                              temperature=0.0)  # fmt: skip
    text = httpx.get(server.url_for("metrics"), trust_env=False).text
    for metric in EXPECTED_METRICS_V1:
        assert metric in text, metric


def _running(server) -> tuple[float, float, float]:
    values = _scrape(server)
    return (values["vllm:num_requests_running"], values["vllm:num_requests_waiting"],
            values["vllm:kv_cache_usage_perc"])  # fmt: skip


async def _poll_until(predicate, *, timeout: float, interval: float = 0.5, description=""):
    start = time.time()
    while time.time() - start < timeout:
        if predicate():
            return
        await asyncio.sleep(interval)
    raise TimeoutError(f"Timed out after {timeout}s waiting for: {description}")


def test_abort_metrics_reset(server):
    prompt_ids = tokenize(_PROMPT)
    assert _running(server) == (0, 0, 0.0)

    async def main():
        client = server.get_async_client()
        tasks = [
            asyncio.create_task(client.completions.create(
                model=MODEL_NAME, prompt=prompt_ids, max_tokens=500, temperature=0.0))
            for _ in range(3)
        ]  # fmt: skip
        try:
            await _poll_until(lambda: _running(server)[0] > 0, timeout=10.0, interval=0.1,
                              description="running_requests > 0")  # fmt: skip
        except TimeoutError:
            pytest.fail("Requests never appeared as running in metrics")
        finally:
            running, _, kv_usage = _running(server)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()
        assert running > 0 and kv_usage > 0
        await _poll_until(lambda: _running(server) == (0, 0, 0), timeout=10.0, interval=0.2,
                          description="gauge metrics back to zero")  # fmt: skip

    asyncio.run(main())
    assert _running(server) == (0, 0, 0.0)
