"""What on-call sees of a round: the gateway's access log, per-key and engine summaries (lab 291).

    >>> from labsupport.scenarios.api_key_abuse.evidence import LOG_FIELDS, access_view
    >>> LOG_FIELDS[:4]
    ('start_s', 'end_s', 'key', 'status')

`access_view(round)` is the gateway's access log as the diagnosis exercise gets it: one dict per
response with `LOG_FIELDS` (times in seconds from the round's start, `ttft_ms` as the gateway
measured it, None for a refused request). `per_key(round)` and `engine(round)` print the tables
the notebook shows: requests, refusals and time to first token per key as the clients saw
them, and the engine's queue, KV cache and preemptions from its /metrics.
"""

from __future__ import annotations

from labsupport.serving.loadgen import percentile
from labsupport.serving.metrics import metric_value

LOG_FIELDS = ("start_s", "end_s", "key", "status", "prompt_tokens", "max_tokens",
              "completion_tokens", "ttft_ms")  # fmt: skip


def access_view(rnd) -> list[dict]:
    """The round's access log, reduced to LOG_FIELDS (times rounded to the millisecond)."""
    out = []
    for e in rnd.log:
        row = {k: e[k] for k in LOG_FIELDS}
        row["start_s"], row["end_s"] = round(row["start_s"], 3), round(row["end_s"], 3)
        out.append(row)
    return out


def per_key(rnd, since_s: float = 0.0) -> str:
    """A table per key of what its clients saw in the round (requests started after since_s)."""
    keys = sorted({r.key for r in rnd.results})
    lines = [f"{'key':<22}{'requests':>9}{'429':>6}{'TTFT p50 ms':>13}{'TTFT p95 ms':>13}"]
    for key in keys:
        mine = [r for r in rnd.results if r.key == key and r.start_s >= since_s]
        ttfts = [1000 * (r.ttft_s if r.ttft_s is not None else r.e2e_s)
                 for r in mine if r.status in (200, 0)]  # fmt: skip
        p50, p95 = percentile(ttfts, 50), percentile(ttfts, 95)
        refused = sum(r.status == 429 for r in mine)
        lines.append(f"{key:<22}{len(mine):>9}{refused:>6}{_ms(p50):>13}{_ms(p95):>13}")
    return "\n".join(lines)


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def engine(rnd) -> str:
    """The engine's view of the round: its queue and KV cache over time, and its counters."""
    samples = rnd.samples or [(0.0, 0, 0, 0.0, 0)]
    before, after = rnd.metrics_before, rnd.metrics_after

    def gained(name: str) -> float:
        return (metric_value(after, name) or 0.0) - (metric_value(before, name) or 0.0)

    return "\n".join([
        f"vllm:num_requests_running   max {max(s[1] for s in samples):.0f}",
        f"vllm:num_requests_waiting   max {max(s[2] for s in samples):.0f}",
        f"vllm:kv_cache_usage_perc    max {max(s[3] for s in samples):.2f}",
        f"vllm:num_preemptions_total  +{gained('vllm:num_preemptions_total'):.0f}",
        f"vllm:generation_tokens_total +{gained('vllm:generation_tokens_total'):.0f}",
        f"vllm:prompt_tokens_total    +{gained('vllm:prompt_tokens_total'):.0f}",
    ])  # fmt: skip
