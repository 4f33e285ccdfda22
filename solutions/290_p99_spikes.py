# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 290 - p99 latency spikes, p50 is fine
#
# Time to first token is fine for almost every request, but a few percent wait twenty times
# longer, in bursts, with no errors and a GPU that looks healthy. You will reproduce the
# spikes with a real serving loop, find what stops it with the interpreter's own
# instrumentation, attribute the slow requests to it with numbers, fix it the way current
# inference servers do, and prove the fix (and why the classic fix is a memory leak). About
# 30 minutes; the workloads run in about 1.5 minutes, each `check()` in about 1.5 minutes.

# %%
from labsupport import device

_ = device.banner(
    gpu="optional",
    stand_in="only the per-token matmul runs on the CPU; the heap, the token loop and "
    "CPython's garbage collector are exactly the same",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV3 - llm-gateway-prod: TTFT p99 above SLO for 15 min** (14:05 UTC)
# >
# > | panel | value |
# > |---|---|
# > | `vllm:time_to_first_token_seconds` p99 (SLO 0.1 s) | **0.21 s**, in bursts |
# > | `vllm:time_to_first_token_seconds` p50 | 0.004 s, unchanged since last week |
# > | `vllm:inter_token_latency_seconds` p99 | 0.010 s, unchanged |
# > | `vllm:num_requests_waiting` | 0-2, no queue |
# > | GPU utilisation (DCGM) | 55-60 %, flat; no Xid errors, no restarts |
# > | HTTP 5xx | 0 |
# >
# > What changed: Tuesday's release loads a bigger prefix-cache index at start-up and turned
# > on `logprobs=3` for an evaluation customer.
#
# No errors, no queue, a healthy GPU, a flat median, a flat inter-token p99, and yet a few
# requests in a hundred wait 50 times longer than the median for their first token. What
# stops the server, and why only sometimes?

# %% [markdown]
# ## 2. Reproduce
#
# `labsupport.token_loop` is a decode loop in one process, built like an inference engine:
#
# - **start-up heap**: a tokenizer vocabulary and a prefix-cache block index, ~750k small
#   Python containers that live as long as the server (plus what `import torch` creates);
# - **open-loop traffic**: requests arrive at 150/s on a fixed-seed Poisson schedule, whether
#   or not the server keeps up, each with a prompt of 32-256 tokens and 64-192 output tokens;
# - **continuous batching**: every step admits waiting requests, runs one small matmul per
#   token (synchronised on the GPU when there is one), and appends each stream's next token
#   with its logprobs (a dict of 3 small objects per token, as with `logprobs=3`); a step
#   takes at least 6 ms, like the forward pass of a real model;
# - a request and its response stream point at each other (the stream's callback), and the
#   last 128 finished requests stay in a lookup cache;
# - the collector's thresholds are pinned to CPython's classic `(700, 10, 10)` (the default
#   up to 3.12; 3.13 raised the first one to 2000), so the lab behaves the same on 3.11-3.13.
#
# `gc_pauses.run_arm` runs it in a fresh process (so this kernel's own objects do not count)
# and returns what it measured: every request's arrival and first-token times, every
# inter-token gap, and every collection the interpreter ran. The `default` arm changes
# nothing: CPython's garbage collector runs on its own schedule, as it does in production.

# %%
from labsupport import gc_pauses, gc_plots, plots

config = gc_pauses.LoopConfig()  # 150 requests/s for 10 s after a 1.5 s warm-up; seed 0
default = gc_pauses.run_arm("default", config=config)  # a fresh process, about 15 s
print(
    f"{len(default.requests)} requests on {default.device}: TTFT p50 "
    f"{default.p50_ttft_ms:.1f} ms, p99 {default.p99_ttft_ms:.1f} ms; "
    f"inter-token p99 {default.p99_itl_ms:.1f} ms"
)

# %%
_ = plots.show(gc_plots.timeline(default, title="default: TTFT of each request at its arrival"))

# %% [markdown]
# Almost every request gets its first token within one or two decode steps. Every few seconds
# a whole column of requests waits 50-250 ms: everything that arrived within the same fraction
# of a second. Requests are independent, so something stalled the one thread that serves all
# of them. The shaded spans are the interpreter's full (generation-2) garbage collections;
# the next section shows how they are measured and proves the link.

# %% [markdown]
# ## 3. Diagnose
#
# CPython frees most objects by reference counting. Objects that can hold references
# (lists, dicts, class instances: *containers*) are also tracked by a cycle collector,
# which finds groups of objects that only reference each other. It is generational: new
# containers start in generation 0; survivors of a collection move to 1, then to 2. A
# collection of generation 2 walks **every** tracked container in the process, holding the
# GIL: nothing else in the process runs until it is done.
#
# The interpreter tells you about every collection through `gc.callbacks`: each callback is
# called with `"start"` before and `"stop"` after a collection, with the generation and the
# number of objects freed. This is how the engine recorded the shaded spans
# (`gc_pauses.PauseLog`, which stores into `array('d')`, so recording allocates no tracked
# object). Try it here, on a heap of 300,000 small lists:

# %%
import gc
import time

events = []


def on_gc(phase, info):
    events.append((phase, info["generation"], info.get("collected"), time.perf_counter()))


junk = [[i] for i in range(300_000)]  # 300k more tracked containers that stay alive
tracked = len(gc.get_objects())  # everything the collector tracks in this kernel
gc.callbacks.append(on_gc)
try:
    gc.collect()  # a full collection, as the collector would run it on its own
finally:
    gc.callbacks.remove(on_gc)
(_, gen, _, t0), (_, _, freed, t1) = events[-2:]
print(
    f"generation {gen}: {(t1 - t0) * 1e3:.1f} ms to walk {tracked:,} tracked containers "
    f"({(t1 - t0) * 1e9 / tracked:.0f} ns each), freed {freed}"
)
del junk

# %% [markdown]
# Now the evidence from the serving loop. `default.pauses` lists every collection in the
# measured window (generation, `start_s`, `end_s`, `duration_ms`, `collected`); the engine
# also timed one full collection of its start-up heap before warm-up.

# %%
import numpy as np

for g in (0, 1, 2):
    ms = [p.duration_ms for p in default.pauses if p.generation == g]
    print(f"generation {g}: {len(ms):4d} collections, longest {max(ms, default=0):6.1f} ms")
gen2 = default.gen2_pauses
print(
    f"start-up heap: {default.heap_tracked_objects:,} tracked objects; one full collection of"
    f" it took {default.full_gc_ms_at_start:.0f} ms"
)
print("gen-2 pauses (start s, ms):", [(round(p.start_s, 2), round(p.duration_ms)) for p in gen2])
print("seconds between them:     ", np.diff([p.start_s for p in gen2]).round(2).tolist())
print(f"time inside collections: {default.gc_time_share:.1%} of the window")

# %% [markdown]
# Young collections (generations 0 and 1) walk only recent objects: fractions of a
# millisecond to a few ms. Full collections walk the whole start-up heap: as long as the
# `gc.collect()` timed at start-up. Why every few seconds, with no call to `gc.collect()`?
# CPython's generational collector (3.13 and earlier) runs a full collection when two
# conditions hold (`gc_collect_generations()` in `Modules/gcmodule.c` up to 3.12,
# `gc_select_generation()` in `Python/gc.c` in 3.13):
#
# 1. generation 1 was collected more than `gc.get_threshold()[2]` (10) times since the last
#    full collection - in a busy server that is always true within a second; and
# 2. the objects *promoted into* generation 2 since the last full collection exceed a
#    quarter of the objects that survived it: `long_lived_pending > long_lived_total / 4`.
#
# Condition 2 makes the interval proportional to the heap: ~900k long-lived objects means a
# full collection every ~225k promotions. Per-token state (the logprob dicts) lives as long
# as its request, long enough to survive two young collections, so steady traffic promotes
# tens of thousands of objects per second, which are freed by reference counting when the
# request ends, but were counted anyway. The heap sets both the length of each pause and
# the interval between pauses.
#
# **Why TTFT p99 and not inter-token p99.** A pause stalls every stream in flight and every
# request that arrives during it. Each stream sees one long gap per pause among hundreds of
# normal ones, so the inter-token p99 barely moves (compare the numbers above). But every
# request arriving in a 200 ms pause waits for it, on top of its normal first-token time:
# the damage is proportional to the time spent paused, so with a few percent of the time in
# pauses, a few percent of all requests are slow - the p99 TTFT lands inside the pauses.
# The SLO that pages is the one that weights by time.
#
# **Exercise 1 (graded).** Attribute the slow requests to full collections with numbers:
# what fraction of the requests above the p-th percentile of TTFT were waiting for their first
# token while a generation-2 collection ran?

# %% tags=["exercise"]
import numpy as np


def share_of_slow_requests_in_gc(requests, pauses, percentile=99):
    """Fraction of the slow requests whose wait for the first token overlaps a full collection.

    requests: gc_pauses.RequestRecord items (arrival_s, first_token_s, ttft_ms).
    pauses: gc_pauses.Pause items of all generations (generation, start_s, end_s).
    A request is slow when its ttft_ms is strictly above np.percentile(all ttft_ms, percentile).
    Its wait is the interval [arrival_s, first_token_s]; it overlaps a pause when that interval
    and [start_s, end_s] intersect. Count generation-2 pauses only.
    Return a float in [0, 1]; 0.0 when no request is slow.
    """
    # BEGIN SOLUTION
    ttft = np.array([r.ttft_ms for r in requests])
    cut = np.percentile(ttft, percentile)
    full = [(p.start_s, p.end_s) for p in pauses if p.generation == 2]
    slow = [r for r, t in zip(requests, ttft, strict=True) if t > cut]
    if not slow:
        return 0.0
    hit = sum(any(s <= r.first_token_s and e >= r.arrival_s for s, e in full) for r in slow)
    return hit / len(slow)
    # END SOLUTION


# %%
for pct in (99, 95, 50):
    share = share_of_slow_requests_in_gc(default.requests, default.pauses, pct)
    print(f"requests above p{pct} TTFT: {share:.0%} were waiting through a gen-2 collection")

# %% [markdown]
# Grade it (the checks run the workload again in fresh processes and compare your function
# with the pause log of those runs; the fix checks fail until you write `after_warmup` in
# section 4):

# %%
from labsupport import check

check("290")

# %% [markdown]
# ## 4. Fix
#
# The start-up heap is needed for the life of the server and never becomes garbage, yet every
# full collection walks all of it. The options an on-call engineer reaches for:
#
# - **`gc.disable()` for good**: no pauses, and no cycle is ever freed again. Every request
#   references its stream, which references it back: every request leaks (section 5).
# - **a bigger `gc.set_threshold(...)`**: fewer *young* collections; full ones are still
#   scheduled by the 25 % rule, and each still walks the whole heap.
# - **`gc.collect()` by hand between batches**: the same walk of the same heap, at a moment
#   you choose: still a stall for every stream.
# - **`gc.collect(); gc.freeze()` after warm-up**: every tracked object moves into a
#   *permanent generation* that the collector never walks; collection stays on for what
#   serving creates.
#
# Leave the thresholds alone here. Fewer young collections also mean fewer full ones, and
# the request cycles that reached generation 2 pile up in between: try
# `gc.set_threshold(2_000, 10, 10)` after freezing and the memory check will show it.
#
# `gc.freeze()` (Python 3.7+) exists for exactly this: objects created at start-up that will
# live forever. Collect first, so garbage from start-up is not frozen with the heap. This is
# what vLLM does: `freeze_gc_heap()` in `vllm/utils/gc_utils.py` runs `gc.collect(0)`,
# `gc.collect(1)`, `gc.collect(2)`, then `gc.freeze()`, once the engine has finished
# initialising and warming up. Its `GCDebugger` in the same file logs every collection's
# duration and generation through `gc.callbacks` when `VLLM_GC_DEBUG=1` (or
# `VLLM_GC_DEBUG='{"top_objects":5}'` to also list the most common collected types) - the
# tool for this page on a real vLLM server.
#
# **Exercise 2 (graded).** Write `after_warmup()`. The engine calls it once, when warm-up
# is done and before measured traffic starts. The checks run the default arm and your arm
# in fresh processes and require a p99 TTFT at least 3x lower, with memory still bounded.

# %% tags=["exercise"]
import gc


def after_warmup() -> None:
    """Called once by the engine after warm-up, before measured traffic.

    Make every later full collection cheap while the start-up heap stays in place and
    automatic collection stays on (requests sit in reference cycles that must still be
    freed). Hint: the gc module can exempt objects that will live for ever.
    """
    # BEGIN SOLUTION
    gc.collect()  # do not freeze start-up garbage along with the heap
    gc.freeze()  # the heap moves to the permanent generation: never walked again
    # END SOLUTION


# %%
check("290")

# %% [markdown]
# ## 5. Verify
#
# Three arms, one after the other, each in a fresh process with the same seed and schedule:
# `default`, `fixed` (your `after_warmup`) and `disabled` (`gc.disable()` after warm-up, the
# classic answer).

# %%
result = gc_pauses.compare_arms(
    after_warmup, arms=("default", "fixed", "disabled"), config=config
)  # about 45 s
print(result.table())
print(f"\np99 TTFT, default / fixed: {result.ratio:.1f}x")
for arm in result.arms.values():
    verdict = gc_pauses.memory_problems(arm) or ["memory bounded"]
    print(f"{arm.arm:<9} frozen {arm.frozen_objects:>9,}  {verdict[0]}")

# %%
_ = plots.show(gc_plots.comparison(result))
_ = plots.show(
    plots.before_after(
        {
            "default": result.default.p99_ttft_ms,
            "gc.disable()": result.disabled.p99_ttft_ms,
            "gc.freeze()": result.fixed.p99_ttft_ms,
        },
        unit="ms",
        title=f"p99 time to first token ({result.fixed.device})",
    )
)

# %% [markdown]
# The fixed arm keeps collecting: it still runs generation-2 collections (the `leaked` column
# stays near 0 %), but they walk only what serving created since the freeze, so they take
# tens of ms at most instead of hundreds.
# `gc.disable()` looks just as fast on latency, and the bottom panel shows its price: live
# request objects grow with every request served, because nothing frees the cycles any
# more. In production that is an OOM kill a few hours later, and then a far longer pause.

# %%
from labsupport import headline

headline.record(
    "290",
    metric="p99 TTFT",
    before=result.default.p99_ttft_ms,
    after=result.fixed.p99_ttft_ms,
    unit="ms",
    device=result.fixed.device,
    gen2_pauses_default=len(result.default.gen2_pauses),
    gen2_pauses_fixed=len(result.fixed.gen2_pauses),
    longest_gen2_ms_default=round(result.default.longest_gen2_ms, 1),
    longest_gen2_ms_fixed=round(result.fixed.longest_gen2_ms, 1),
    leak_fraction_disabled=round(result.disabled.leak_fraction, 2),
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** Under high concurrency, does Python's garbage collector cause
# noticeable stop-the-world stalls? Have you tuned the GC thresholds?
#
# **Model answer.** Yes, and it shows up as tail latency, not as a median shift. CPython's
# cycle collector runs on the thread that allocates, holding the GIL, and a full
# (generation-2) collection walks every tracked container in the process. An inference
# server holds hundreds of thousands to millions of them from start-up (tokenizer, configs,
# torch modules, caches). CPython schedules a full collection whenever the objects promoted
# since the last one exceed 25 % of the long-lived heap, and per-request state that lives
# for a few hundred ms is promoted, so steady traffic triggers one every few seconds; each
# stalls every stream and every arrival for as long as the heap takes to walk. I would prove
# it with `gc.callbacks` (or `VLLM_GC_DEBUG=1` on vLLM): pause durations per generation,
# lined up against the slow requests. The fix is to call `gc.collect()` then `gc.freeze()`
# once after warm-up, as vLLM's `freeze_gc_heap()` does: the start-up heap moves to the
# permanent generation, full collections only walk what serving creates, and cycles are still
# freed. Then keep the hot path from creating containers it does not need: latency samples
# in `array('d')` or numpy rather than lists of dicts (even a list of a million floats is a
# million references to visit in every full collection; an `array('d')` has none), weak
# references for callbacks that would otherwise form cycles. Thresholds are a second-order
# knob: a larger generation-0 threshold means fewer young collections, but it does not
# shorten a full one.
#
# **Where the classic answer is outdated.** "`gc.disable()` before the serving loop, call
# `gc.collect()` by hand after a batch, raise `set_threshold(700, 10, 10)`":
#
# - `gc.disable()` for good leaks every reference cycle: here every request (section 5),
#   and in real servers exceptions with tracebacks, asyncio tasks, closures over `self`.
#   Memory grows until the OOM killer ends the process.
# - A manual `gc.collect()` walks the same heap: the stall moves to a point you choose, it
#   does not get shorter (unless the heap is frozen, or the collection can hide behind GPU
#   work the CPU is waiting for anyway).
# - Thresholds: the full-collection trigger is the 25 % rule, not `threshold[2]` alone.
#
# **Version notes (pin yours in the runbook, re-measure after upgrades).** This lab ran on
# the Python named in the banner. 3.8-3.12 use the generational collector measured here with
# thresholds (700, 10, 10); 3.13 keeps it with a generation-0 threshold of 2000. Python
# 3.14.0 shipped an incremental collector (two generations; `gc.collect(1)` runs one
# increment of the old generation; this lab's pauses are much shorter there, which is that
# collector's point). In April 2026 CPython decided to restore the 3.13 generational
# collector in 3.14.x and 3.15 (cpython#148726). PEP 848 (draft, for 3.16)
# proposes a generational *and* incremental collector to cut full-collection pauses.
# `gc.freeze()` works the same in all of them.
#
# **Follow-up questions an interviewer asks.**
#
# - The pause is 200 ms but the GPU-utilisation panel barely moved. Why? (A 1-minute
#   average of a GPU that idles 3 % of the time; decode steps are short.)
# - How do you tell a GC stall from a slow step on the GPU? (`gc.callbacks` timestamps vs
#   step timings; `py-spy dump --native` during a spike shows the collector's frames.)
# - The prefix cache keeps growing after start-up. Is one `gc.freeze()` enough? (No:
#   freeze again at quiet points, or keep the index in arrays/tensors instead of objects.)
# - What does `gc.freeze()` do for a pre-fork server? (Keeps collections in the children
#   from writing to the parent's pages: copy-on-write stays shared - Instagram's use.)
# - Why is inter-token p99 the wrong SLO to catch this?
#
# **References.**
#
# - gc module (`gc.freeze`, `gc.callbacks`): https://docs.python.org/3/library/gc.html
# - the full-collection rule, `gc_collect_generations()` in CPython 3.11:
#   https://github.com/python/cpython/blob/3.11/Modules/gcmodule.c
# - garbage collector design:
#   https://github.com/python/cpython/blob/main/InternalDocs/garbage_collector.md
# - forward-port of the generational GC to 3.14.x and 3.15:
#   https://github.com/python/cpython/issues/148726
# - PEP 848, generational incremental GC (draft): https://peps.python.org/pep-0848/
# - vLLM `freeze_gc_heap()` and `GCDebugger`:
#   https://github.com/vllm-project/vllm/blob/main/vllm/utils/gc_utils.py
# - Instagram, copy-on-write friendly Python garbage collection:
#   https://instagram-engineering.com/copy-on-write-friendly-python-garbage-collection-ad6ed5233ddf
