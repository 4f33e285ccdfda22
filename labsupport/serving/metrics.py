"""Prometheus metrics of one server, under vLLM's names where vLLM has the metric.

    >>> from labsupport.serving.engine import Engine
    >>> from labsupport.serving.metrics import ServingMetrics
    >>> engine = Engine.build(device="cpu")
    >>> metrics = ServingMetrics(engine, model_name="srelab-tiny")
    >>> b"vllm:num_requests_running" in metrics.render()[0]
    True

Each server owns its `CollectorRegistry` (no global state, so several servers or tests can live
in one process). Engine state (queue lengths, KV usage, token counters, steps) is read at scrape
time by a collector, so the engine thread never touches Prometheus objects; latency histograms
are observed by the engine thread through the observer hooks (prometheus_client is thread-safe).
Names as in vLLM V1 (`vllm/v1/metrics/loggers.py`): `vllm:num_requests_running`,
`vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc`, `vllm:prompt_tokens_total`,
`vllm:generation_tokens_total`, `vllm:num_preemptions_total`, `vllm:request_success_total`,
`vllm:time_to_first_token_seconds`, `vllm:inter_token_latency_seconds`,
`vllm:e2e_request_latency_seconds`, `vllm:request_queue_time_seconds`. Ours carry `srelab:`.
`metric_value(text, name, **labels)` reads one back from any server's /metrics text.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LABELS = ["model_name", "engine"]
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]  # fmt: skip
ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0]  # fmt: skip
REQUEST_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]  # fmt: skip


class _EngineCollector:
    """Reads the engine (and server) state at scrape time."""

    def __init__(self, owner: ServingMetrics):
        self.owner = owner

    def collect(self):
        o = self.owner
        eng, labels = o.engine, [o.model_name, "0"]
        c, alloc, hb = eng.counters, eng.kv.allocator, eng.heartbeat()

        def gauge(name, doc, value):
            g = GaugeMetricFamily(name, doc, labels=LABELS)
            g.add_metric(labels, value)
            return g

        def counter(name, doc, value):
            m = CounterMetricFamily(name, doc, labels=LABELS)
            m.add_metric(labels, value)
            return m

        yield gauge(
            "vllm:num_requests_running", "Requests in model execution batches.", hb.num_running
        )
        yield gauge(
            "vllm:num_requests_waiting", "Requests waiting to be processed.", hb.num_waiting
        )
        yield gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", alloc.usage
        )
        yield counter("vllm:prompt_tokens", "Number of prefill tokens processed.", c.prompt_tokens)
        yield counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", c.generation_tokens
        )
        yield counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            c.preemptions,
        )
        success = CounterMetricFamily(
            "vllm:request_success", "Count of processed requests by finish reason.",
            labels=[*LABELS, "finished_reason"],
        )  # fmt: skip
        for reason, n in sorted(c.finished.items()):
            success.add_metric([*labels, reason], n)
        yield success
        yield counter(
            "srelab:engine_steps", "Engine steps (iterations that ran the model).", c.steps
        )
        yield counter(
            "srelab:wasted_decode_steps",
            "Tokens computed for requests whose client had already gone (request-steps).",
            c.wasted_steps,
        )
        yield counter(
            "srelab:recomputed_tokens",
            "Tokens prefilled again after preemption.",
            c.recomputed_tokens,
        )
        last = (
            None if eng.last_step_s is None else time.time() - (time.monotonic() - eng.last_step_s)
        )
        yield gauge(
            "srelab:engine_last_step_timestamp_seconds",
            "Unix time the last engine step finished (0: none yet).",
            last or 0.0,
        )
        yield gauge(
            "srelab:engine_alive", "1 while the engine loop runs.", 1.0 if hb.alive else 0.0
        )
        yield gauge(
            "srelab:kv_cache_blocks_total", "KV-cache blocks in the pool.", alloc.num_blocks
        )
        yield gauge(
            "srelab:kv_cache_blocks_used", "KV-cache blocks held by requests.", alloc.num_used
        )
        yield gauge(
            "srelab:http_requests_in_flight", "Completion requests being served.", o.in_flight()
        )
        phases = GaugeMetricFamily(
            "srelab:startup_phase_seconds",
            "Seconds spent in each start-up phase.",
            labels=["phase"],
        )
        for phase, seconds in o.startup_phases.items():
            phases.add_metric([phase], seconds)
        yield phases


class ServingMetrics:
    """The registry of one server and the engine observer that feeds its histograms."""

    def __init__(self, engine, *, model_name: str = "srelab-tiny", in_flight=lambda: 0):
        self.engine = engine
        self.model_name = model_name
        self.in_flight = in_flight
        self.startup_phases: dict[str, float] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r, lv = self.registry, (model_name, "0")

        def hist(name, doc, buckets):
            return Histogram(name, doc, LABELS, buckets=buckets, registry=r).labels(*lv)

        self.ttft = hist(
            "vllm:time_to_first_token_seconds", "Time to first token in seconds.", TTFT_BUCKETS
        )
        self.itl = hist(
            "vllm:inter_token_latency_seconds", "Inter-token latency in seconds.", ITL_BUCKETS
        )
        self.e2e = hist(
            "vllm:e2e_request_latency_seconds", "E2e request latency in seconds.", REQUEST_BUCKETS
        )
        self.queue = hist(
            "vllm:request_queue_time_seconds",
            "Time spent in WAITING phase for request.",
            REQUEST_BUCKETS,
        )
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
        r.register(_EngineCollector(self))
        engine.observer = self

    # -- engine observer hooks (called on the engine thread) ----------------------------------
    def on_step(self, num_tokens: int) -> None:
        pass

    def on_first_token(self, req, ttft_s: float) -> None:
        self.ttft.observe(ttft_s)

    def on_token(self, req, itl_s: float) -> None:
        self.itl.observe(itl_s)

    def on_finished(self, req) -> None:
        self.e2e.observe(req.finished_s - req.arrival_s)
        if req.scheduled_s is not None:
            self.queue.observe(req.scheduled_s - req.arrival_s)

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
