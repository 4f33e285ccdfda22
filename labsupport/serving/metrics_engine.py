"""The scrape-time half of a server's metrics: engine state read when /metrics is asked.

    >>> from labsupport.serving.engine import Engine
    >>> from labsupport.serving.metrics import ServingMetrics
    >>> from labsupport.serving.metrics_engine import EngineCollector
    >>> names = [m.name for m in EngineCollector(ServingMetrics(Engine.build())).collect()]
    >>> "vllm:num_requests_running" in names, "vllm:request_success" in names
    (True, True)

Queue lengths, KV usage and the engine's cumulative counters live on the engine thread;
reading them at scrape time keeps Prometheus objects off that thread. vLLM families first (see
`metrics`), then ours (`srelab:`).
"""

from __future__ import annotations

import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LABELS = ["model_name", "engine"]
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")


class EngineCollector:
    """Reads the engine (and server) state at scrape time."""

    def __init__(self, owner):
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

        def by(kind, name, doc, label, values):
            m = kind(name, doc, labels=[*LABELS, label])
            for key, value in values:
                m.add_metric([*labels, key], value)
            return m

        yield gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            hb.num_running,
        )
        yield gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            hb.num_waiting,
        )
        yield by(
            GaugeMetricFamily,
            "vllm:num_requests_waiting_by_reason",
            "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for "
            "scheduling capacity; 'deferred' = deferred by transient constraints. Sum of all "
            "reasons equals vllm:num_requests_waiting.",
            "reason",
            [("capacity", hb.num_waiting), ("deferred", 0)],
        )
        yield by(
            GaugeMetricFamily,
            "vllm:engine_sleep_state",
            "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is "
            "awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep "
            "level 2.",
            "sleep_state",
            [("awake", 1), ("weights_offloaded", 0), ("discard_all", 0)],
        )
        yield gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", alloc.usage
        )
        zero = [  # no prefix cache, no KV connector, no multimodal input: nothing to count
            ("vllm:prefix_cache_queries",
             "Prefix cache queries, in terms of number of queried tokens."),
            ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."),
            ("vllm:external_prefix_cache_queries",
             "External prefix cache queries from KV connector cross-instance cache sharing, "
             "in terms of number of queried tokens."),
            ("vllm:external_prefix_cache_hits",
             "External prefix cache hits from KV connector cross-instance cache sharing, "
             "in terms of number of cached tokens."),
            ("vllm:mm_cache_queries",
             "Multi-modal cache queries, in terms of number of queried items."),
            ("vllm:mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items."),
        ]  # fmt: skip
        for name, doc in zero:
            yield counter(name, doc, 0)
        yield counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            c.preemptions,
        )
        yield counter("vllm:prompt_tokens", "Number of prefill tokens processed.", c.prompt_tokens)
        yield counter(
            "vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).", 0
        )
        yield counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", c.generation_tokens
        )
        yield by(
            CounterMetricFamily,
            "vllm:request_success",
            "Count of successfully processed requests.",
            "finished_reason",
            [(reason, c.finished.get(reason, 0)) for reason in FINISH_REASONS],
        )
        yield from self._ours(o, eng, labels, c, alloc, hb, gauge, counter)

    @staticmethod
    def _ours(o, eng, labels, c, alloc, hb, gauge, counter):
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
