import asyncio

from labsupport.serving.engine import Engine, EngineConfig, SamplingParams
from labsupport.serving.metrics import ServingMetrics, metric_value
from labsupport.serving.model import ModelConfig

VLLM_NAMES = [
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:num_preemptions_total",
    "vllm:request_success_total",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:inter_token_latency_seconds_bucket",
    "vllm:e2e_request_latency_seconds_bucket",
    "vllm:request_queue_time_seconds_bucket",
]


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
    for name in VLLM_NAMES:
        assert metric_value(text, name) is not None, name
    labels = {"model_name": "tiny", "engine": "0"}
    assert metric_value(text, "vllm:prompt_tokens_total", **labels) == 6
    assert metric_value(text, "vllm:generation_tokens_total") == 10
    assert metric_value(text, "vllm:request_success_total", finished_reason="length") == 2
    assert metric_value(text, "vllm:time_to_first_token_seconds_count") == 2
    assert metric_value(text, "vllm:inter_token_latency_seconds_count") == 8
    assert metric_value(text, "vllm:e2e_request_latency_seconds_count") == 2
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
