import asyncio

from prometheus_client.parser import text_string_to_metric_families

from labsupport.serving.engine import Engine, EngineConfig, SamplingParams
from labsupport.serving.metrics import ServingMetrics, metric_value
from labsupport.serving.model import ModelConfig

# vLLM's families: name, type, extra labels (besides model_name and engine)
VLLM_FAMILIES = [
    ("vllm:num_requests_running", "gauge", ()),
    ("vllm:num_requests_waiting", "gauge", ()),
    ("vllm:num_requests_waiting_by_reason", "gauge", ("reason",)),
    ("vllm:engine_sleep_state", "gauge", ("sleep_state",)),
    ("vllm:kv_cache_usage_perc", "gauge", ()),
    ("vllm:prefix_cache_queries", "counter", ()),
    ("vllm:prefix_cache_hits", "counter", ()),
    ("vllm:external_prefix_cache_queries", "counter", ()),
    ("vllm:external_prefix_cache_hits", "counter", ()),
    ("vllm:mm_cache_queries", "counter", ()),
    ("vllm:mm_cache_hits", "counter", ()),
    ("vllm:num_preemptions", "counter", ()),
    ("vllm:prompt_tokens", "counter", ()),
    ("vllm:prompt_tokens_cached", "counter", ()),
    ("vllm:generation_tokens", "counter", ()),
    ("vllm:request_success", "counter", ("finished_reason",)),
    ("vllm:request_prompt_tokens", "histogram", ()),
    ("vllm:request_generation_tokens", "histogram", ()),
    ("vllm:iteration_tokens_total", "histogram", ()),
    ("vllm:request_max_num_generation_tokens", "histogram", ()),
    ("vllm:request_params_n", "histogram", ()),
    ("vllm:request_params_max_tokens", "histogram", ()),
    ("vllm:time_to_first_token_seconds", "histogram", ()),
    ("vllm:inter_token_latency_seconds", "histogram", ()),
    ("vllm:request_time_per_output_token_seconds", "histogram", ()),
    ("vllm:e2e_request_latency_seconds", "histogram", ()),
    ("vllm:request_queue_time_seconds", "histogram", ()),
    ("vllm:request_inference_time_seconds", "histogram", ()),
    ("vllm:request_prefill_time_seconds", "histogram", ()),
    ("vllm:request_decode_time_seconds", "histogram", ()),
    ("vllm:request_prefill_kv_computed_tokens", "histogram", ()),
]
# vllm/v1/metrics/buckets.py (REQUEST_LATENCY_BUCKETS) and build_1_2_5_buckets(128)
REQUEST_EDGES = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]  # fmt: skip
TOKEN_EDGES = [1, 2, 5, 10, 20, 50, 100]


def _engine():
    return Engine.build(ModelConfig(max_model_len=128), EngineConfig(num_blocks=16))


def test_metrics_have_vllm_names_and_follow_the_engine():
    engine = _engine()
    metrics = ServingMetrics(engine, model_name="tiny")
    engine.start()
    try:

        async def main():
            for _ in range(2):
                async for _out in engine.generate([1, 2, 3], SamplingParams(max_tokens=5)):
                    pass

        asyncio.run(main())
    finally:
        engine.stop()
    text = metrics.render()[0].decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind, extra in VLLM_FAMILIES:
        family = families[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert {"model_name", "engine", *extra} <= set(sample.labels), name
    labels = {"model_name": "tiny", "engine": "0"}
    assert metric_value(text, "vllm:prompt_tokens_total", **labels) == 6
    assert metric_value(text, "vllm:generation_tokens_total") == 10
    assert metric_value(text, "vllm:request_success_total", finished_reason="length") == 2
    reasons = [s.labels["finished_reason"] for s in families["vllm:request_success"].samples
               if s.name.endswith("_total")]  # fmt: skip
    assert reasons == ["stop", "length", "abort", "error", "repetition"]
    assert metric_value(text, "vllm:time_to_first_token_seconds_count") == 2
    assert metric_value(text, "vllm:inter_token_latency_seconds_count") == 8
    for name in ("e2e_request_latency", "request_queue_time", "request_prefill_time",
                 "request_decode_time", "request_inference_time",
                 "request_time_per_output_token"):  # fmt: skip
        assert metric_value(text, f"vllm:{name}_seconds_count") == 2, name
    # each request: a prefill step (3 prompt + 1 sampled) and 4 decode steps (1 each)
    assert metric_value(text, "vllm:iteration_tokens_total_sum") == 2 * (3 + 5)
    assert metric_value(text, "vllm:iteration_tokens_total_count") == 2 * 5
    assert metric_value(text, "vllm:request_params_max_tokens_sum") == 10
    assert metric_value(text, "vllm:request_generation_tokens_sum") == 10
    edges = sorted(float(s.labels["le"]) for s in families["vllm:e2e_request_latency_seconds"]
                   .samples if s.name.endswith("_bucket") and s.labels["le"] != "+Inf")  # fmt: skip
    assert edges == REQUEST_EDGES
    edges = sorted(float(s.labels["le"]) for s in families["vllm:request_prompt_tokens"]
                   .samples if s.name.endswith("_bucket") and s.labels["le"] != "+Inf")  # fmt: skip
    assert edges == TOKEN_EDGES
    assert "vllm:cache_config_info{" in text
    assert metric_value(text, "srelab:engine_steps_total") >= 5
    assert metric_value(text, "srelab:kv_cache_blocks_total") == 16
    assert metric_value(text, "srelab:engine_last_step_timestamp_seconds") > 1.6e9
    assert metric_value(text, "vllm:kv_cache_usage_perc") == 0.0
    assert metric_value(text, "no_such_metric") is None


def test_each_server_has_its_own_registry():
    a, b = ServingMetrics(_engine()), ServingMetrics(_engine())
    a.client_disconnects.inc(3)
    assert metric_value(a.render()[0].decode(), "srelab:client_disconnects_total") == 3
    assert metric_value(b.render()[0].decode(), "srelab:client_disconnects_total") == 0
    assert a.render()[1].startswith("text/plain")
