"""Lab 290's reference answers and interviewer material (never part of the package).

    >>> from tests.labs.truth import p99_spikes as truth
    >>> truth.answer_key(0)["cause"], truth.answer_key(1)["cause"], truth.answer_key(2)["cause"]
    ('collections', 'slow_callbacks', 'steps')

A seed picks one of three causes of the same symptom (p99 TTFT spikes, p50 fine):
- "collections": a large start-up state and per-token objects: the interpreter's full
  collections walk the whole state, holding the GIL, every few seconds (fix: gc.collect();
  gc.freeze() after warm-up);
- "slow_callbacks": the request log is flushed (write + fsync to a slow volume) from a
  coroutine on the event loop, so the loop stops for the flush (fix: asyncio.to_thread);
- "steps": a tenant's long documents are prefilled in one or two huge steps that stall every
  stream and arrival (fix: long_prefill_token_threshold, i.e. chunk one prompt per step).
The evidence for each is the log that starts the stall; the other logs inherit it (a step
with a collection inside is slow too; the step after any stall is slow catching up).
"""

from __future__ import annotations

import numpy as np

from labsupport.scenarios import p99_spikes
from labsupport.scenarios.p99_spikes.records import (
    STALL_MS,
    Collection,
    RequestRecord,
    Run,
    Scale,
    SlowCallback,
    Step,
)

CAUSES = ("collections", "slow_callbacks", "steps")
ENGINE_TASK = "engine"
FIXES = {
    "collections": "gc.collect(); gc.freeze() once after warm-up (vLLM's freeze_gc_heap)",
    "slow_callbacks": "flush off the loop: `await asyncio.to_thread(log.flush)`",
    "steps": "scheduler.long_prefill_token_threshold of a few hundred tokens (chunk the prompt)",
}


def cause_of(variant) -> str:
    """The variant's cause, from what the seed made pathological."""
    if variant.doc_every_s > 0:
        return "steps"
    if variant.volume_ms >= 50:
        return "slow_callbacks"
    return "collections"


def stalls(run: Run, cause: str) -> np.ndarray:
    """(start_s, end_s) of the stalls of one log: its entries of STALL_MS or more (slow
    callbacks: of tasks other than the engine, whose callbacks are its steps)."""
    entries = getattr(run, cause)
    if cause == "slow_callbacks":
        entries = [e for e in entries if e.task != ENGINE_TASK]
    rows = [(e.start_s, e.end_s) for e in entries if e.duration_ms >= STALL_MS]
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def slow_requests(requests, percentile: float) -> list:
    ttft = np.array([r.ttft_ms for r in requests])
    if not ttft.size:
        return []
    cut = np.percentile(ttft, percentile)
    return [r for r, t in zip(requests, ttft, strict=True) if t > cut]


def _waited_during(r, spans: np.ndarray) -> bool:
    return bool(np.any((spans[:, 0] <= r.first_token_s) & (spans[:, 1] >= r.arrival_s)))


def evidence(run: Run, cause: str, percentile: float = 99) -> dict:
    """What the diagnosis must return for `cause` on this run."""
    slow = slow_requests(run.requests, percentile)
    spans = stalls(run, cause)
    return {
        "cause": cause,
        "slow": len(slow),
        "stalls": len(spans),
        "explained": sum(_waited_during(r, spans) for r in slow),
    }


def attribute(run: Run, percentile: float = 99) -> str | None:
    """The cause a careful reading gives: each slow request goes to the log that starts its
    stall (collections, then other tasks' callbacks, then steps); the most common wins."""
    slow = slow_requests(run.requests, percentile)
    spans = {c: stalls(run, c) for c in CAUSES}
    votes = dict.fromkeys(CAUSES, 0)
    for r in slow:
        for c in CAUSES:
            if _waited_during(r, spans[c]):
                votes[c] += 1
                break
    best = max(CAUSES, key=lambda c: votes[c])
    return best if votes[best] else None


def answer_key(seed: int) -> dict:
    """The variant's graded ground truth: its cause and what the seed set."""
    v = p99_spikes.variant(seed)
    return {
        "cause": cause_of(v),
        "arrival_rate_per_s": v.arrival_rate_per_s,
        "heap_objects": v.heap_objects,
        "logprobs_k": v.logprobs_k,
        "flush_every_s": v.flush_every_s,
        "volume_ms": v.volume_ms,
        "doc_every_s": v.doc_every_s,
        "doc_tokens": v.doc_tokens,
    }


def expected(seed: int) -> dict:
    """What the interviewer should see in variant `seed` (computed from the seed, no run)."""
    v = p99_spikes.variant(seed)
    cause = cause_of(v)
    look = {
        "collections": (
            f"2 collections of generation 2 in the checks' 6 s window (3-4 in srelab run's "
            f"10 s), every ~2.5-3 s, 150-700 ms each on a 2-core CPU (longer on a busy "
            f"machine); ~{v.heap_objects + 30_000:,} tracked objects at start-up (plus torch's "
            f"~170k on a GPU); top_logprobs={v.logprobs_k}. Slow steps and 'engine' slow "
            "callbacks coincide with them (the collection ran inside the step); their "
            "prefill_tokens are ordinary"
        ),
        "slow_callbacks": (
            f"'request-log' slow callbacks of ~{v.volume_ms:.0f} ms every {v.flush_every_s} s; "
            "steps ordinary except the catch-up step after each (the prompts that queued); "
            "no long collection"
        ),
        "steps": (
            f"a step of ~{16384 * 0.01 + 6:.0f} ms computing ~16k prompt tokens (then one for "
            f"the rest of the document) every ~{v.doc_every_s} s: documents of "
            f"{v.doc_tokens[0]:,}-{v.doc_tokens[1]:,} tokens; no long collection, no other "
            "task's slow callback; inter-token p99 jumps too"
        ),
    }[cause]
    return {
        "cause (what explain_slow_requests must return)": cause,
        "evidence to look for": look,
        "arrival rate": f"{v.arrival_rate_per_s:.0f} requests/s",
        "the fix the checks measure": FIXES[cause],
        "p99 TTFT as shipped vs fixed (2-core CPU)": {
            "collections": "150-700 ms vs 25-60 ms",
            "slow_callbacks": f"~{v.volume_ms + 20:.0f} ms vs 25-40 ms",
            "steps": "250-350 ms vs 30-45 ms",
        }[cause],
        "wrong fixes that fail": (
            "gc.disable() for good (finished requests never freed), thresholds only, a "
            "manual gc.collect(), flushing less often or never, dropping lines, lowering "
            "max_num_batched_tokens alone, a threshold so small that every prompt is chunked, "
            "any fix for another cause"
        ),
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Lines the slow requests up against all three logs, sees that the step timer and "
            "the engine's slow callbacks only inherit the stall (a collection inside the step, "
            "or the catch-up step after a flush), names the log that starts it with its "
            "stalls and the share of slow requests they cover, and says why p50 and (for "
            "collections and flushes) inter-token p99 barely move."
        ),
        "adequate": (
            "Names the right cause with the run's numbers, by overlap, without separating the "
            "root from the logs that inherit it (e.g. needs a hint to rule out the slow steps)."
        ),
        "weak": (
            "Names a cause from the incident text or a single plot (e.g. 'the steps are "
            "slow', 'GC' in a flush variant), or returns numbers that do not match the run."
        ),
    },
    "fix": {
        "strong": (
            "Fixes only the cause found, the way current servers do: gc.collect(); gc.freeze() "
            "after warm-up; the flush in a thread with durability kept; a per-request prefill "
            "threshold sized from the step cost; explains what each alternative breaks."
        ),
        "adequate": (
            "Passes the checks but applies fixes for causes that are not there, or sizes the "
            "threshold by trial and error."
        ),
        "weak": (
            "gc.disable(), bigger GC thresholds, a manual collect, flushing less often, "
            "lowering the batch budget alone: hides or moves the stall, or breaks memory or "
            "durability."
        ),
    },
    "reasoning": {
        "strong": (
            "Explains why a stall of the one thread serving everything shows in TTFT p99 and "
            "not p50 (time-weighted damage), why full collections scale with the heap and "
            "recur with promotions (the 25 % rule), why an event-loop stall also delays the "
            "step after it, and how each fix keeps correctness (memory, durability, fairness)."
        ),
        "adequate": "Explains the mechanism of the cause found, not why the others were ruled out.",
        "weak": "Describes the symptom or the fix without a mechanism.",
    },
}


def synthetic_run(cause: str, seed: int = 0, *, n_stalls: int = 3, window_s: float = 6.0) -> Run:
    """A run built by hand where `cause` starts each stall and the other logs inherit it,
    with the near misses a grader needs (a stall of exactly STALL_MS, a 19.9 ms entry, a wait
    that ends as a stall starts, TTFTs tied at the cut)."""
    rng = np.random.default_rng([cause.__len__(), seed])
    rate = 100.0
    arrivals = np.sort(rng.uniform(0.0, window_s, size=int(rate * window_s)))
    base_ms = np.round(rng.uniform(6.0, 14.0, size=arrivals.size), 0)  # ties at the cut
    starts = np.linspace(0.8, window_s - 0.8, n_stalls) + rng.uniform(-0.2, 0.2, n_stalls)
    lengths = rng.uniform(150.0, 400.0, n_stalls)
    first = arrivals + base_ms / 1e3
    for s, d in zip(starts, lengths, strict=True):
        e = s + d / 1e3
        waiting = (arrivals <= e) & (first >= s)
        first[waiting] = np.maximum(first[waiting], e + rng.uniform(0.004, 0.012))
    requests = [
        RequestRecord(i, float(a), float(f), float(f + 0.5), 32, 64)
        for i, (a, f) in enumerate(zip(arrivals, first, strict=True))
    ]
    # a slow request whose wait ends exactly as the first stall starts (it intersects)
    edge = requests[int(np.searchsorted(arrivals, starts[0] - 0.3))]
    requests[edge.request_id] = RequestRecord(
        edge.request_id, float(starts[0] - 0.3), float(starts[0]), edge.finish_s, 32, 64
    )
    steps, collections, callbacks = [], [], []
    t = 0.0
    while t < window_s:
        steps.append(Step(t, 7.0, int(rng.integers(0, 300)), 60))
        t += 0.008
    for i in range(0, 600, 7):  # young collections everywhere
        collections.append(Collection(i * 0.01, float(rng.uniform(0.3, 2.0)), 0, 10))
    for s, d in zip(starts, lengths, strict=True):
        e = s + d / 1e3
        if cause == "collections":
            collections.append(Collection(s, d, 2, 5000))
            steps.append(Step(s - 0.002, d + 9.0, 200, 60))  # the collection ran in this step
            callbacks.append(SlowCallback(s - 0.002, d + 4.0, ENGINE_TASK))
        elif cause == "slow_callbacks":
            callbacks.append(SlowCallback(s, d, "request-log"))
            steps.append(Step(e, 30.0 + d / 10, 4000, 60))  # the catch-up step
        else:
            steps.append(Step(s, d, 16384, 60))
            steps.append(Step(e, 25.0 + d / 20, 3000, 60))
    # distractors between the stalls, where no request waits long
    ends = starts + lengths / 1e3
    quiet = (ends[:-1] + starts[1:]) / 2
    if cause != "collections":
        collections.append(Collection(quiet[0], 35.0, 1, 20))
    collections.append(Collection(quiet[-1] - 0.3, 19.9, 1, 20))  # just under a stall
    if cause != "slow_callbacks":
        callbacks.append(SlowCallback(quiet[-1], 26.0, "request-log"))
    if cause != "steps":
        steps.append(Step(quiet[0] + 0.3, STALL_MS, 900, 60))  # exactly a stall, quiet
    steps.sort(key=lambda s: s.start_s)
    collections.sort(key=lambda c: c.start_s)
    n = len(requests)
    v = p99_spikes.variant({"collections": 0, "slow_callbacks": 1, "steps": 2}[cause])
    return Run(
        arm="default",
        device="cpu",
        variant=v,
        scale=Scale(0.0, window_s),
        requests=requests,
        steps=steps,
        collections=collections,
        slow_callbacks=callbacks,
        itl_ms=np.full(10, 8.0),
        window_s=window_s,
        live_t_s=np.zeros(0),
        live_requests=np.zeros(0, dtype=np.int64),
        freed_s=np.full(n, np.nan),
        unfreed_after_drive=0,
        next_full_ms=float("nan"),
        log_written_s=np.zeros(n),
        log_durable_s=np.zeros(n),
        flushes=0,
        prefill_done=np.full(n, 64),
        history_size=128,
        heap_tracked_objects=0,
        heap_intact=True,
        frozen_objects=0,
        gc_enabled_end=True,
        thresholds_end=(700, 10, 10),
        scheduler_end=(16384, 0),
        after_warmup_ms=0.0,
        wall_start=0.0,
        wall_end=0.0,
        perf_elapsed_s=0.0,
        tampered=[],
        monitors_intact=True,
    )
