"""Prometheus metrics of one server: vLLM's families, names, types, labels and buckets.

    >>> from labsupport.serving.engine import Engine
    >>> from labsupport.serving.metrics import ServingMetrics
    >>> engine = Engine.build(device="cpu")
    >>> metrics = ServingMetrics(engine, model_name="srelab-tiny")
    >>> b"vllm:iteration_tokens_total_bucket" in metrics.render()[0]
    True

As vLLM V1's `PrometheusStatLogger` (`vllm/v1/metrics/loggers.py`; buckets from
`vllm/v1/metrics/buckets.py`), every family labelled `model_name` and `engine`:
- scheduler state (gauges, read at scrape time): `vllm:num_requests_running`,
  `vllm:num_requests_waiting`, `vllm:num_requests_waiting_by_reason{reason}` (all waiting here
  wait for `capacity`), `vllm:kv_cache_usage_perc`, `vllm:engine_sleep_state{sleep_state}`;
- counters: `vllm:prompt_tokens`, `vllm:generation_tokens`, `vllm:num_preemptions`,
  `vllm:request_success{finished_reason}` (stop, length, abort, error, repetition), and the
  cache counters, at 0 because this engine has no prefix cache, no KV connector and no
  multimodal input: `vllm:prefix_cache_queries|hits`, `vllm:external_prefix_cache_queries|hits`,
  `vllm:mm_cache_queries|hits`, `vllm:prompt_tokens_cached`;
- per-request histograms, observed when a request finishes: `vllm:request_prompt_tokens`,
  `vllm:request_generation_tokens`, `vllm:request_max_num_generation_tokens`,
  `vllm:request_params_n`, `vllm:request_params_max_tokens`,
  `vllm:request_prefill_kv_computed_tokens`, `vllm:e2e_request_latency_seconds`,
  `vllm:request_queue_time_seconds`, `vllm:request_inference_time_seconds`,
  `vllm:request_prefill_time_seconds`, `vllm:request_decode_time_seconds`,
  `vllm:request_time_per_output_token_seconds`;
- per token / per step: `vllm:time_to_first_token_seconds`, `vllm:inter_token_latency_seconds`,
  `vllm:iteration_tokens_total` (tokens an engine step computed: prompts prefilled plus
  tokens sampled);
- `vllm:cache_config_info` (block size, blocks, prefix caching off).
Ours carry `srelab:` (engine steps, wasted decode steps, KV blocks, disconnects, start-up).

Each server owns its `CollectorRegistry` (no global state: several servers or tests can live in
one process). Engine state is read at scrape time by a collector, so the engine thread never
touches Prometheus objects except through the observer hooks, which are thread-safe.
`metric_value(text, name, **labels)` reads one back from any server's /metrics text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from labsupport.serving.metrics_engine import EngineCollector

LABELS = ["model_name", "engine"]
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]  # fmt: skip
ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0]  # fmt: skip
REQUEST_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]  # fmt: skip
ITERATION_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
N_BUCKETS = [1, 2, 5, 10, 20]


def buckets_1_2_5(max_value: int) -> list[int]:
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max_value."""
    out, scale = [], 1
    while True:
        for m in (1, 2, 5):
            if m * scale > max_value:
                return out
            out.append(m * scale)
        scale *= 10


class ServingMetrics:
    """The registry of one server and the engine observer that feeds its histograms."""

    def __init__(self, engine, *, model_name: str = "srelab-tiny", in_flight=lambda: 0):
        self.engine = engine
        self.model_name = model_name
        self.in_flight = in_flight
        self.startup_phases: dict[str, float] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r, lv = self.registry, (model_name, "0")
        tokens = buckets_1_2_5(engine.model_config.max_model_len)

        def hist(name, doc, buckets):
            return Histogram(name, doc, LABELS, buckets=buckets, registry=r).labels(*lv)

        self.prompt_tokens = hist(
            "vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokens
        )
        self.generation_tokens = hist(
            "vllm:request_generation_tokens", "Number of generation tokens processed.", tokens
        )
        self.iteration_tokens = hist(
            "vllm:iteration_tokens_total",
            "Histogram of number of tokens per engine_step.",
            ITERATION_BUCKETS,
        )
        self.max_generation_tokens = hist(
            "vllm:request_max_num_generation_tokens",
            "Histogram of maximum number of requested generation tokens.",
            tokens,
        )
        self.params_n = hist(
            "vllm:request_params_n", "Histogram of the n request parameter.", N_BUCKETS
        )
        self.params_max_tokens = hist(
            "vllm:request_params_max_tokens",
            "Histogram of the max_tokens request parameter.",
            tokens,
        )
        self.ttft = hist(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            TTFT_BUCKETS,
        )
        self.itl = hist(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            ITL_BUCKETS,
        )
        self.tpot = hist(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            ITL_BUCKETS,
        )
        phases = [
            ("e2e", "vllm:e2e_request_latency_seconds", "e2e request latency in seconds"),
            ("queue", "vllm:request_queue_time_seconds", "time spent in WAITING phase"),
            ("inference", "vllm:request_inference_time_seconds", "time spent in RUNNING phase"),
            ("prefill", "vllm:request_prefill_time_seconds", "time spent in PREFILL phase"),
            ("decode", "vllm:request_decode_time_seconds", "time spent in DECODE phase"),
        ]
        self.phase = {
            key: hist(name, f"Histogram of {what} for request.", REQUEST_BUCKETS)
            for key, name, what in phases
        }
        self.e2e, self.queue = self.phase["e2e"], self.phase["queue"]
        self.prefill_kv_computed = hist(
            "vllm:request_prefill_kv_computed_tokens",
            "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
            tokens,
        )
        info = Gauge(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            ["block_size", "cache_dtype", "enable_prefix_caching", "num_gpu_blocks"],
            registry=r,
        )
        info.labels(str(engine.config.block_size), "auto", "False",
                    str(engine.config.num_blocks)).set(1)  # fmt: skip
        self.client_disconnects = Counter(
            "srelab:client_disconnects", "Clients that went away before their request finished.",
            registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "srelab:rejected_requests", "Completion requests answered with an error status.",
            ["status"], registry=r,
        )  # fmt: skip
        for status in ("400", "404", "413", "503"):
            self.rejected.labels(status)  # present at 0 from the start, so rates work
        r.register(EngineCollector(self))
        engine.observer = self

    # -- engine observer hooks (called on the engine thread) ----------------------------------
    def on_step(self, num_tokens: int) -> None:
        self.iteration_tokens.observe(num_tokens)

    def on_first_token(self, req, ttft_s: float) -> None:
        self.ttft.observe(ttft_s)

    def on_token(self, req, itl_s: float) -> None:
        self.itl.observe(itl_s)

    def on_finished(self, req) -> None:
        n_out = len(req.output_ids)
        self.phase["e2e"].observe(req.finished_s - req.arrival_s)
        self.prompt_tokens.observe(len(req.prompt_ids))
        self.generation_tokens.observe(n_out)
        self.max_generation_tokens.observe(req.params.max_tokens)
        self.params_n.observe(req.params.n)
        self.params_max_tokens.observe(req.params.max_tokens)
        if req.scheduled_s is None:
            return  # aborted while waiting: no phase beyond the queue was reached
        self.phase["queue"].observe(req.scheduled_s - req.arrival_s)
        self.prefill_kv_computed.observe(len(req.prompt_ids))
        if req.first_token_s is None:
            return
        self.phase["prefill"].observe(req.first_token_s - req.scheduled_s)
        self.phase["inference"].observe(req.last_token_s - req.scheduled_s)
        decode_s = req.last_token_s - req.first_token_s
        self.phase["decode"].observe(decode_s)
        self.tpot.observe(decode_s / (n_out - 1) if n_out > 1 else 0.0)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """Sum of the samples called `name` whose labels include `labels`, in Prometheus text.

    Works on any server's /metrics (ours or vLLM's); None when there is no such sample.
    """
    from prometheus_client.parser import text_string_to_metric_families

    total, seen = 0.0, False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
                seen = True
    return total if seen else None
