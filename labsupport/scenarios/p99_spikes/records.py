"""What one run of lab 290's server measured, as records that cross processes as data.

    >>> from labsupport.scenarios.p99_spikes.records import RequestRecord, Step, percentile_ms
    >>> RequestRecord(1, 2.0, 2.125, 3.0, 10, 64).ttft_ms
    125.0
    >>> Step(1.0, 250.0, 9000, 12).end_s
    1.25
    >>> percentile_ms([1.0, 2.0, 3.0, 4.0], 50)
    2.5

Every time is in seconds from the start of the measured window (the server's own
`time.perf_counter()`), every duration in ms. `Run` is what `serve()` returns: the requests and
the three logs the server keeps (its step timer, `gc.callbacks`, asyncio's slow-callback log),
plus what the run's health checks need (when each finished request was freed, when each
request-log line became durable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labsupport import wire

STALL_MS = 20.0  # an entry of any log this long or longer is a stall


def percentile_ms(values, q: float) -> float:
    """The q-th percentile (numpy's linear interpolation); nan for no values."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.percentile(values, q)) if values.size else float("nan")


@wire.record
@dataclass(frozen=True)
class RequestRecord:
    """One measured request: when it arrived, got its first token and finished."""

    request_id: int
    arrival_s: float
    first_token_s: float
    finish_s: float
    n_tokens: int
    prompt_tokens: int

    @property
    def ttft_ms(self) -> float:
        return (self.first_token_s - self.arrival_s) * 1e3


@wire.record
@dataclass(frozen=True)
class Step:
    """One engine step: its own time (Python and device), the prompt tokens it computed."""

    start_s: float
    duration_ms: float
    prefill_tokens: int
    decode_tokens: int

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_ms / 1e3


@wire.record
@dataclass(frozen=True)
class Collection:
    """One run of the interpreter's collector, as `gc.callbacks` reports it."""

    start_s: float
    duration_ms: float
    generation: int
    collected: int

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_ms / 1e3


@wire.record
@dataclass(frozen=True)
class SlowCallback:
    """One line of asyncio's debug log: the loop ran one callback of `task` for duration_ms."""

    start_s: float
    duration_ms: float
    task: str

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_ms / 1e3


@wire.record
@dataclass(frozen=True)
class Variant:
    """What a seed sets: the traffic, the start-up state, the request log's volume, documents.

    heap_objects: long-lived containers built at start-up (tokenizer vocab, prefix-cache index).
    logprobs_k: top-k logprobs returned per token (0: none).
    flush_every_s / volume_ms: the request log is flushed this often; one flush (write and
    fsync) takes this long on the volume it lives on.
    doc_every_s / doc_tokens: a tenant sends a long document this often (0: never), this long.
    """

    seed: int
    arrival_rate_per_s: float
    prompt_tokens: tuple[int, int]
    output_tokens: tuple[int, int]
    heap_objects: int
    logprobs_k: int
    flush_every_s: float
    volume_ms: float
    doc_every_s: float
    doc_tokens: tuple[int, int]
    doc_output_tokens: int = 24


@wire.record
@dataclass(frozen=True)
class Scale:
    """How long an arm runs: warm-up, then a measured window of arrivals (then it drains)."""

    warmup_s: float
    duration_s: float
    device: str = "auto"  # "auto", "cpu" or "cuda"


@wire.record
@dataclass
class Run:
    """What one arm measured, in its own process."""

    arm: str
    device: str
    variant: Variant
    scale: Scale
    requests: list  # RequestRecord, in arrival order
    steps: list  # Step
    collections: list  # Collection
    slow_callbacks: list  # SlowCallback
    itl_ms: np.ndarray
    window_s: float
    live_t_s: np.ndarray  # request objects in memory over the window
    live_requests: np.ndarray
    freed_s: np.ndarray  # per request (same order): when it was freed, nan if never
    unfreed_after_drive: int  # finished requests still in memory after ~50 s of allocations
    next_full_ms: float  # the first generation-2 collection those allocations triggered
    log_written_s: np.ndarray  # per request: when its request-log line was written
    log_durable_s: np.ndarray  # ... and when a flush made it durable (nan: never)
    flushes: int
    prefill_done: np.ndarray  # per request: prompt tokens the engine computed for it
    history_size: int
    heap_tracked_objects: int
    heap_intact: bool
    frozen_objects: int
    gc_enabled_end: bool
    thresholds_end: tuple
    scheduler_end: tuple  # (max_num_batched_tokens, long_prefill_token_threshold)
    after_warmup_ms: float
    wall_start: float  # time.time() when the arm's function was entered
    wall_end: float
    perf_elapsed_s: float  # the same span on time.perf_counter()
    tampered: list  # what the hook changed that it may not (names)
    monitors_intact: bool  # gc.callbacks and the asyncio log handler still in place

    @property
    def ttft_ms(self) -> np.ndarray:
        return np.array([r.ttft_ms for r in self.requests])

    @property
    def p50_ttft_ms(self) -> float:
        return percentile_ms(self.ttft_ms, 50)

    @property
    def p99_ttft_ms(self) -> float:
        return percentile_ms(self.ttft_ms, 99)

    @property
    def p99_itl_ms(self) -> float:
        return percentile_ms(self.itl_ms, 99)

    def summary(self) -> dict:
        """Headline numbers of the run, JSON-ready."""
        return {
            "arm": self.arm,
            "device": self.device,
            "requests": len(self.requests),
            "p50_ttft_ms": self.p50_ttft_ms,
            "p99_ttft_ms": self.p99_ttft_ms,
            "p99_itl_ms": self.p99_itl_ms,
        }


def intervals(entries, min_ms: float = STALL_MS) -> np.ndarray:
    """(start_s, end_s) rows of the entries lasting min_ms or more."""
    rows = [(e.start_s, e.end_s) for e in entries if e.duration_ms >= min_ms]
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def instrument_table(run: Run, min_ms: float = STALL_MS) -> list[dict]:
    """Per log: how many entries, how many lasted min_ms or more, the longest, their total."""
    out = []
    for name in ("steps", "collections", "slow_callbacks"):
        entries = getattr(run, name)
        long = [e.duration_ms for e in entries if e.duration_ms >= min_ms]
        out.append(
            {
                "log": name,
                "entries": len(entries),
                f">= {min_ms:g} ms": len(long),
                "longest_ms": max((e.duration_ms for e in entries), default=0.0),
                f"ms in entries >= {min_ms:g} ms": float(sum(long)),
            }
        )
    return out


def health(run: Run) -> dict:
    """What a fix must keep, as this run measured it (for display; the checks set the bounds)."""
    lag = run.log_durable_s - run.log_written_s
    docs = [r.ttft_ms for r in run.requests if r.prompt_tokens > 8192]
    return {
        "finished requests still in memory": int(run.unfreed_after_drive),
        "request-log lines not durable": int(np.isnan(run.log_durable_s).sum()),
        "longest wait to be durable (s)": float(np.nanmax(lag)) if lag.size else 0.0,
        "documents' median TTFT (ms)": float(np.median(docs)) if docs else None,
        "start-up state intact": bool(run.heap_intact),
    }
