"""Garbage-collection pauses in a serving loop: record them, run the arms, compare p99 TTFT.

    >>> from labsupport import gc_pauses
    >>> with gc_pauses.PauseLog() as log:
    ...     _ = gc_pauses.gc.collect()
    >>> log.pauses()[-1].generation
    2
    >>> gc_pauses.percentile_ms([1.0, 2.0, 3.0, 4.0], 50)
    2.5

Run the workload (`labsupport.token_loop`) in fresh processes, one arm after the other:

    result = gc_pauses.compare_arms(fix="mymodule:after_warmup")   # default vs fixed
    print(result.table()); result.ratio                             # default p99 / fixed p99

Arms: `default` (CPython's own GC schedule), `fixed` (a caller's `after_warmup()` runs once
after warm-up) and `disabled` (`gc.disable()` after warm-up, the classic answer). Every time is
measured in the arm's own process with `time.perf_counter()`; ratios compare arms of one call.
"""

from __future__ import annotations

import gc
from array import array
from dataclasses import dataclass, field

import numpy as np

from labsupport import wire

ARMS = ("default", "fixed", "disabled")
DISABLE_FOREVER = "gc:disable"  # the `disabled` arm's after_warmup: no collection, ever


@wire.record
@dataclass(frozen=True)
class LoopConfig:
    """The workload. Defaults: 2-3 full collections of 200-400 ms in 10 s on a 2-core CPU box."""

    heap_objects: int = 750_000  # GC-tracked objects in the start-up heap (plus torch's ~170k)
    vocab_size: int = 50_000
    warmup_s: float = 1.5
    duration_s: float = 10.0  # the measured window of arrivals (then the loop drains)
    arrival_rate_per_s: float = 150.0  # open loop: arrivals do not wait for the server
    prompt_tokens: tuple[int, int] = (32, 256)
    output_tokens: tuple[int, int] = (64, 192)
    max_batch: int = 256
    step_floor_ms: float = 6.0  # a decode step of a real model on the accelerator
    hidden: int = 256
    model_vocab: int = 4096
    logprobs_k: int = 3  # per token: a dict of k Logprob objects, as with `logprobs=3`
    history_size: int = 128  # recent finished requests kept for lookups
    sample_every_s: float = 0.25
    seed: int = 0
    device: str = "auto"  # "auto", "cpu" or "cuda"
    # CPython's classic thresholds (the default up to 3.12; 3.13 raised generation 0 to 2000),
    # set at start-up so the lab behaves the same on 3.11-3.13. None: the interpreter's own.
    gc_thresholds: tuple[int, int, int] | None = (700, 10, 10)


@wire.record
@dataclass(frozen=True)
class Pause:
    """One collection: which generation, when it started (s), how long, what it freed."""

    generation: int
    start_s: float
    duration_ms: float
    collected: int

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_ms / 1e3


class PauseLog:
    """Record every collection through `gc.callbacks` (a context manager; arrays, not objects).

    Storage is `array`: appending a float to it allocates no GC-tracked object, so recording
    pauses does not make them longer. probe: an optional `() -> int` read after every
    collection (e.g. how many requests are still alive), see `probed()`.
    """

    def __init__(self, clock=None, probe=None):
        import time

        self._clock = clock or time.perf_counter
        self._probe = probe
        self.probe_values = array("q")
        self.generation = array("b")
        self.start = array("d")
        self.duration = array("d")
        self.collected = array("q")
        self._t0 = 0.0
        self._cb = self._callback  # one bound method, so remove() finds it

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = self._clock()
        else:
            self.duration.append(self._clock() - self._t0)
            self.start.append(self._t0)
            self.generation.append(info["generation"])
            self.collected.append(info["collected"])
            if self._probe is not None:
                self.probe_values.append(self._probe())

    def __enter__(self) -> PauseLog:
        gc.callbacks.append(self._cb)
        return self

    def __exit__(self, *exc) -> None:
        if self._cb in gc.callbacks:
            gc.callbacks.remove(self._cb)

    def __len__(self) -> int:
        return len(self.start)

    def probed(
        self, generation: int, *, origin: float = 0.0, since_s: float = -1e18, until_s: float = 1e18
    ) -> np.ndarray:
        """(end time relative to origin, probe value) after each collection of `generation`."""
        rows = [
            (s + d - origin, v)
            for g, s, d, v in zip(
                self.generation, self.start, self.duration, self.probe_values, strict=True
            )
            if g == generation and since_s <= s - origin <= until_s
        ]
        return np.array(rows, dtype=np.float64).reshape(-1, 2)

    def pauses(
        self, *, origin: float = 0.0, since_s: float | None = None, until_s: float | None = None
    ) -> list[Pause]:
        """Pauses with start times relative to `origin`, optionally within [since_s, until_s]."""
        out = []
        for g, s, d, c in zip(
            self.generation, self.start, self.duration, self.collected, strict=True
        ):
            start_s = s - origin
            if (since_s is not None and start_s < since_s) or (
                until_s is not None and start_s > until_s
            ):
                continue
            out.append(Pause(int(g), start_s, d * 1e3, int(c)))
        return out


def percentile_ms(values, q: float) -> float:
    """The q-th percentile (numpy's linear interpolation); nan for no values."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.percentile(values, q)) if values.size else float("nan")


@wire.record
@dataclass(frozen=True)
class RequestRecord:
    """One measured request; times in s from the start of the measured window."""

    request_id: int
    arrival_s: float
    first_token_s: float
    finish_s: float
    n_tokens: int

    @property
    def ttft_ms(self) -> float:
        return (self.first_token_s - self.arrival_s) * 1e3


@wire.record
@dataclass
class MemorySamples:
    """Live request objects, RSS and gc.get_count() over the measured window."""

    t_s: object
    live_requests: object
    rss_bytes: object
    gen_counts: object

    @classmethod
    def empty(cls) -> MemorySamples:
        return cls(array("d"), array("q"), array("q"), array("q"))

    def add(self, t_s: float, live: int, rss: int, counts: tuple) -> None:
        self.t_s.append(t_s)
        self.live_requests.append(live)
        self.rss_bytes.append(rss)
        self.gen_counts.extend(counts)

    def freeze(self) -> MemorySamples:
        return MemorySamples(
            np.array(self.t_s),
            np.array(self.live_requests),
            np.array(self.rss_bytes),
            np.array(self.gen_counts).reshape(-1, 3),
        )


@wire.record
@dataclass
class ArmResult:
    """What one arm measured, in its own process."""

    arm: str
    device: str
    config: LoopConfig
    requests: list[RequestRecord]
    itl_ms: np.ndarray
    pauses: list[Pause]
    samples: MemorySamples
    live_after_full: np.ndarray  # (end s, live requests) after each gen-2 collection in window
    window_s: float
    heap_tracked_objects: int  # tracked objects after start-up (heap + torch + interpreter)
    full_gc_ms_at_start: float  # one gc.collect() of that heap, timed before warm-up
    tracked_start: int  # tracked objects (incl. frozen) at the end of warm-up
    tracked_end: int
    frozen_objects: int
    gc_enabled_end: bool
    thresholds_end: tuple
    heap_intact: bool
    after_warmup_ms: float
    requests_arrived: int

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

    @property
    def gen2_pauses(self) -> list[Pause]:
        return [p for p in self.pauses if p.generation == 2]

    @property
    def longest_gen2_ms(self) -> float:
        return max((p.duration_ms for p in self.gen2_pauses), default=0.0)

    @property
    def gc_time_share(self) -> float:
        """Fraction of the window spent inside collections (all generations)."""
        return sum(p.duration_ms for p in self.pauses) / 1e3 / self.window_s

    @property
    def leak_fraction(self) -> float:
        """Share of requests never freed: growth of the live request objects per arrival.

        Measured between the first and the last full collection of the window, right after
        each, when only live requests remain (~0 when collections keep up, whatever their
        rhythm); with fewer than two full collections, between the window's start and its end
        (~1.0 when every request leaks).
        """
        marks = self.live_after_full
        if len(marks) >= 2:
            (t0, live0), (t1, live1) = marks[0], marks[-1]
        else:
            t0, t1 = self.samples.t_s[0], self.samples.t_s[-1]
            live0, live1 = self.samples.live_requests[0], self.samples.live_requests[-1]
        arrived = sum(t0 < r.arrival_s <= t1 for r in self.requests)
        return float(live1 - live0) / max(1, arrived)

    def summary(self) -> dict:
        """The headline numbers, JSON-ready."""
        keys = "arm device p50_ttft_ms p99_ttft_ms p99_itl_ms longest_gen2_ms gc_time_share"
        out = {k: getattr(self, k) for k in keys.split()}
        rss = self.samples.rss_bytes
        return out | {
            "requests": len(self.requests),
            "gen2_pauses": len(self.gen2_pauses),
            "leak_fraction": self.leak_fraction,
            "tracked_growth": self.tracked_end - self.tracked_start,
            "rss_growth_mb": float(rss[-1] - rss[0]) / 2**20,
            "frozen_objects": self.frozen_objects,
            "heap_tracked_objects": self.heap_tracked_objects,
            "full_gc_ms_at_start": self.full_gc_ms_at_start,
        }


MAX_LEAK_FRACTION = 0.5  # gc.disable() forever measures ~1.0, a working collector ~0


def memory_problems(arm: ArmResult) -> list[str]:
    """Why this arm's memory is not bounded, or its heap was tampered with ([] = fine)."""
    problems = []
    if not arm.heap_intact:
        problems.append(
            "the start-up heap (vocab, prefix cache) was emptied or replaced: the "
            "server needs it; make collecting it cheap instead of deleting it"
        )
    leak = arm.leak_fraction
    if not leak <= MAX_LEAK_FRACTION:
        if not arm.gc_enabled_end:
            why = " (automatic collection is off)"
        elif not arm.gen2_pauses:
            why = (
                f" (no full collection ran during the run, thresholds {arm.thresholds_end}:"
                " the oldest generation must still be collected regularly)"
            )
        else:
            why = ""
        problems.append(
            f"live request objects keep growing: about {leak:.0%} of requests are never freed "
            f"({int(arm.samples.live_requests[0])} alive at the start of the run, "
            f"{int(arm.samples.live_requests[-1])} at the end). Requests sit in reference "
            "cycles, so only the cyclic collector frees them, and it must keep running" + why
        )
    return problems


class ArmFailed(RuntimeError):
    """An arm's process failed (the after_warmup raised, crashed or timed out)."""


def run_arm(
    arm: str, after_warmup=None, *, config: LoopConfig | None = None, timeout_s: float | None = None
) -> ArmResult:
    """Run one arm in a fresh interpreter and return what it measured.

    after_warmup: for `fixed`: a function (one defined in a notebook is sent by its code), a
    ref with .load() (the grader's), "module:function", or a tuple of these, called in order.
    """
    from labsupport import isolate, portable

    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    if arm == "disabled":
        after_warmup = DISABLE_FOREVER
    elif arm == "default":
        after_warmup = None
    elif after_warmup is None:
        raise ValueError("the fixed arm needs an after_warmup")
    cfg = config or LoopConfig()
    limit = timeout_s or 60 + 3 * (cfg.warmup_s + cfg.duration_s)
    hook = portable.sendable(after_warmup)
    r = isolate.run_function("labsupport.token_loop:serve", arm, hook, cfg, timeout_s=limit)
    if not r.ok:
        raise ArmFailed(f"the {arm} arm failed: {r.error}")
    return r.value


@dataclass
class Comparison:
    """Arms run one after the other in one call; ratio = default p99 TTFT / fixed p99 TTFT."""

    arms: dict[str, ArmResult] = field(default_factory=dict)

    def __getattr__(self, name: str) -> ArmResult:
        arms = self.__dict__.get("arms", {})
        if name in arms:
            return arms[name]
        raise AttributeError(name)

    @property
    def ratio(self) -> float:
        return self.arms["default"].p99_ttft_ms / self.arms["fixed"].p99_ttft_ms

    def table(self) -> str:
        head = (
            f"{'arm':<9} {'reqs':>5} {'p50 TTFT':>9} {'p99 TTFT':>9} {'p99 ITL':>8} "
            f"{'gen2':>5} {'longest':>8} {'leaked':>7}"
        )
        rows = [head]
        for a in self.arms.values():
            rows.append(
                f"{a.arm:<9} {len(a.requests):>5} {a.p50_ttft_ms:>7.1f}ms {a.p99_ttft_ms:>7.1f}ms"
                f" {a.p99_itl_ms:>6.1f}ms {len(a.gen2_pauses):>5} {a.longest_gen2_ms:>6.1f}ms"
                f" {a.leak_fraction:>7.0%}"
            )
        return "\n".join(rows)


def compare_arms(
    fix=None,
    *,
    arms=("default", "fixed"),
    config: LoopConfig | None = None,
    timeout_s: float | None = None,
) -> Comparison:
    """Run `arms` sequentially, each in a fresh process, with the same config and seed."""
    result = Comparison()
    for arm in arms:
        result.arms[arm] = run_arm(
            arm, fix if arm == "fixed" else None, config=config, timeout_s=timeout_s
        )
    return result
