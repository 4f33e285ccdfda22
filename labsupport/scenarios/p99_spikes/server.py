"""Lab 290's inference server in one process: an asyncio loop, continuous batching, a request log.

    >>> from labsupport.scenarios import p99_spikes
    >>> from labsupport.scenarios.p99_spikes import server
    >>> scale = p99_spikes.Scale(warmup_s=0.2, duration_s=0.6, device="cpu")
    >>> run = server.serve("default", None, p99_spikes.variant(0), scale, heap_scale=0.02)
    >>> len(run.requests) > 20 and run.requests[0].ttft_ms > 0
    True

What a real server holds and does, each part measured:
- start-up state: a tokenizer vocabulary and a prefix-cache block index (`LongLivedHeap`),
  containers that live as long as the server;
- an open-loop arrival schedule (fixed seed): chat requests, and when the variant has them,
  long documents from one tenant;
- an asyncio loop running the engine task ("engine": schedule, run the step, emit tokens) and
  the request-log task ("request-log": flush the log every `flush_every_s`);
- a scheduler with vLLM's knobs (`max_num_batched_tokens`, `long_prefill_token_threshold`);
- one matmul per step on the device (CUDA, synchronised, when there is one). A step lasts as
  long as a cost model of a real model's forward pass says (6 ms plus 10 us per prompt
  token; the matmul is real but far smaller): the loop sleeps the rest, free for other tasks;
- per-token state as an OpenAI-compatible server keeps it (logprob dicts when asked for);
  a request and its response stream point at each other (the stream's callback).
The server records three logs: its step timer, `gc.callbacks`, and the loop's slow callbacks
(what asyncio's debug mode reports with `loop.slow_callback_duration`). `after_warmup(server)`
is called once, with a `ServerHandle`, after warm-up and before the measured window.

`serve()` runs in whatever process calls it; `arms.run_arm` calls it in a fresh one.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from array import array
from collections import deque

import numpy as np

from labsupport.scenarios.p99_spikes.monitors import PauseLog, SlowCallbackLog
from labsupport.scenarios.p99_spikes.parts import (
    RequestLog,
    Scheduler,
    ServerHandle,
    flush_on_loop,
)
from labsupport.scenarios.p99_spikes.records import RequestRecord, Run, Scale, Step, Variant
from labsupport.scenarios.p99_spikes.state import FREED, Logprob, LongLivedHeap, Request, Stream

STEP_FLOOR_MS = 6.0  # a decode step of a real model on the accelerator
PREFILL_MS_PER_TOKEN = 0.01  # plus this per prompt token computed in the step
SLOW_CALLBACK_S = 0.02  # the slow-callback log keeps callbacks this long or longer
HISTORY_SIZE = 128  # recent finished requests kept for lookups
HIDDEN, MODEL_VOCAB = 256, 4096
SAMPLE_EVERY_S = 0.25
REAL_PREFILL_ROWS = {"cpu": 512, "cuda": 2048}  # rows of a step's real prompt matmul
CLASSIC_THRESHOLDS = (700, 10, 10)  # CPython's default up to 3.12 (3.13 raised gen 0 to 2000)

HEAP: LongLivedHeap | None = None  # module global, as in a real server


def schedule(variant: Variant, duration_s: float, seed: int):
    """(arrival_s, prompt_tokens, max_tokens) of an open-loop schedule, sorted by arrival."""
    rng = np.random.default_rng(seed)
    rate = variant.arrival_rate_per_s
    n = int(duration_s * rate * 1.5) + 16
    arrivals = np.cumsum(rng.exponential(1.0 / rate, size=n))
    arrivals = arrivals[arrivals < duration_s]
    lo, hi = variant.prompt_tokens
    prompt = rng.integers(lo, hi + 1, size=len(arrivals))
    lo, hi = variant.output_tokens
    out = rng.integers(lo, hi + 1, size=len(arrivals))
    if variant.doc_every_s > 0:
        every = variant.doc_every_s
        docs = np.arange(rng.uniform(0.15, 0.6) * every, duration_s, every)
        docs = docs + rng.uniform(-0.1, 0.1, size=len(docs)) * every
        docs = docs[(docs > 0) & (docs < duration_s)]
        lo, hi = variant.doc_tokens
        arrivals = np.concatenate([arrivals, docs])
        prompt = np.concatenate([prompt, rng.integers(lo, hi + 1, size=len(docs))])
        out = np.concatenate([out, np.full(len(docs), variant.doc_output_tokens)])
        order = np.argsort(arrivals, kind="stable")
        arrivals, prompt, out = arrivals[order], prompt[order], out[order]
    return arrivals, prompt.astype(np.int64), out.astype(np.int64)


def pick_device(scale: Scale) -> str:
    if scale.device != "auto":
        return scale.device
    from labsupport import device

    return "cuda" if device.cuda_available() else "cpu"


class Engine:
    """Continuous batching over an open-loop schedule, paced by the cost model.

    The step's matmul runs with torch on CUDA (synchronised) when there is a GPU; on the CPU
    stand-in it runs with numpy, so an arm does not pay for importing torch.
    """

    def __init__(self, variant: Variant, heap: LongLivedHeap, device: str, handle: ServerHandle):
        self.variant, self.heap, self.device, self.handle = variant, heap, device, handle
        rng = np.random.default_rng(variant.seed)
        embed = rng.standard_normal((MODEL_VOCAB, HIDDEN), dtype=np.float32)
        weight = rng.standard_normal((HIDDEN, HIDDEN), dtype=np.float32) / 16
        if device == "cpu":
            self.embed, self.weight, self.torch = embed, weight, None
        else:
            import torch

            self.torch = torch
            self.embed = torch.from_numpy(embed).to(device)
            self.weight = torch.from_numpy(weight).to(device)
        self.history: deque[Request] = deque(maxlen=HISTORY_SIZE)
        self.next_id = 0
        self.k = max(1, variant.logprobs_k)

    def _forward(self, emit_ids: list[int], prefill_tokens: int):
        if self.torch is None:
            return self._forward_numpy(emit_ids, prefill_tokens)
        torch = self.torch
        if prefill_tokens:
            rows = torch.arange(min(prefill_tokens, REAL_PREFILL_ROWS["cuda"]), device=self.device)
            (self.embed[rows % MODEL_VOCAB] @ self.weight).sum()
        if not emit_ids:
            torch.cuda.synchronize()
            return [], []
        x = self.embed[torch.tensor(emit_ids, device=self.device) % MODEL_VOCAB]
        top = torch.topk(torch.log_softmax(x @ self.weight, dim=-1), self.k)
        torch.cuda.synchronize()
        return top.values.tolist(), top.indices.tolist()

    def _forward_numpy(self, emit_ids: list[int], prefill_tokens: int):
        if prefill_tokens:
            rows = np.arange(min(prefill_tokens, REAL_PREFILL_ROWS["cpu"])) % MODEL_VOCAB
            float((self.embed[rows] @ self.weight).sum())
        if not emit_ids:
            return [], []
        logits = self.embed[np.asarray(emit_ids) % MODEL_VOCAB] @ self.weight
        logits = logits - logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        idx = np.argpartition(-logp, self.k - 1, axis=1)[:, : self.k]
        vals = np.take_along_axis(logp, idx, axis=1)
        order = np.argsort(-vals, axis=1)
        idx, vals = np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)
        return vals.tolist(), idx.tolist()

    async def run_phase(self, sched, *, first_index: int, origin: float, rec: dict) -> None:
        """Serve one schedule to completion. first_index < 0: warm-up (nothing recorded)."""
        arrivals, prompts, outs = sched
        measured = first_index >= 0
        pieces, vocab_n = self.heap.pieces, len(self.heap.pieces)
        scheduler, log = self.handle.scheduler, self.handle.request_log
        running: list[Request] = []
        waiting: deque[Request] = deque()
        n, i = len(arrivals), 0
        clock = time.perf_counter
        logprobs_k = self.variant.logprobs_k
        next_sample = 0.0
        while True:
            t0 = clock()
            now = t0 - origin
            while i < n and arrivals[i] <= now:
                index = first_index + i if measured else -1
                waiting.append(
                    Request(self.next_id, index, float(arrivals[i]), int(prompts[i]), int(outs[i]))
                )
                self.next_id += 1
                i += 1
            if measured and now >= next_sample:
                rec["live"].append((now, Request.live))
                next_sample += SAMPLE_EVERY_S
            if not running and not waiting:
                if i >= n:
                    break
                await asyncio.sleep(max(0.0, min(arrivals[i] - now, 0.005)))
                continue
            plan = scheduler.plan(running, waiting)
            prefill = decode = 0
            emitting: list[Request] = []
            for req, count in plan:
                if req.prefilled < req.prompt_tokens:
                    req.prefilled += count
                    prefill += count
                    if req.prefilled >= req.prompt_tokens:
                        emitting.append(req)
                else:
                    decode += count
                    emitting.append(req)
            last_ids = [
                r.output_token_ids[-1] if r.output_token_ids else r.prompt_tokens + r.request_id
                for r in emitting
            ]
            values, indices = self._forward(last_ids, prefill)
            cpu_s = clock() - t0
            rest = (STEP_FLOOR_MS + PREFILL_MS_PER_TOKEN * prefill) / 1e3 - cpu_s
            if rest > 0:
                await asyncio.sleep(rest)  # the device computes; the loop is free meanwhile
            t1 = clock()
            t = t1 - origin
            for req, vals, idx in zip(emitting, values, indices, strict=True):
                tid = (idx[0] * 131 + req.request_id) % vocab_n
                if logprobs_k:
                    req.logprobs.append(
                        {
                            (idx[r] * 131 + req.request_id) % vocab_n: Logprob(
                                vals[r], r + 1, pieces[tid]
                            )
                            for r in range(logprobs_k)
                        }
                    )
                req.output_token_ids.append(tid)
                req.on_token((tid, pieces[tid]))
                if req.first_token_s == 0.0:
                    req.first_token_s = t
                elif measured and req.index >= 0:
                    rec["itl"].append(t - req.last_token_s)
                req.last_token_s = t
                if len(req.output_token_ids) >= req.max_tokens:
                    req.finish_s = t
                    req.logprobs = None  # response sent: drop per-token state
                    log.write(
                        req.index,
                        f"{req.request_id}\t{req.arrival_s:.6f}\t{req.prompt_tokens}"
                        f"\t{len(req.output_token_ids)}\t{t:.6f}\n",
                    )
                    if req.index >= 0:
                        rec["done"][req.index] = (
                            req.first_token_s,
                            req.finish_s,
                            len(req.output_token_ids),
                            req.prefilled,
                        )
                    self.history.append(req)  # evicts the oldest: it dies later, as a cycle
            running = [r for r in running if r.finish_s == 0.0]
            own_s = cpu_s + max(rest, 0.0) + (clock() - t1)
            if measured:
                rec["steps"].append((t0 - origin, own_s * 1e3, prefill, decode))
            if rest <= 0:
                await asyncio.sleep(0)  # let the loop's other tasks run between steps


async def _flush_task(handle: ServerHandle, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), handle.flush_every_s)
        except asyncio.TimeoutError:
            pass
        await handle.flush_request_log(handle.request_log)


def _resolve_hook(after_warmup):
    """None, a callable, an object with .load() (a grader's ExerciseRef), "module:function",
    or a tuple of these (called in order)."""
    if isinstance(after_warmup, (list, tuple)):
        hooks = [_resolve_hook(h) for h in after_warmup]

        def chained(server):
            for h in hooks:
                if h is not None:
                    h(server)

        return chained
    if after_warmup is None or callable(after_warmup):
        return after_warmup
    if hasattr(after_warmup, "load"):
        return after_warmup.load()
    if isinstance(after_warmup, str) and ":" in after_warmup:
        import importlib

        module_name, _, attr = after_warmup.partition(":")
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    raise TypeError(
        f"after_warmup must be a function, a ref with .load() or 'module:function', "
        f"got {after_warmup!r}"
    )


LOG_CONFIG = (
    "volume_ms",
    "path",
    "_file",
    "_lock",
    "_flush_lock",
    "written_s",
    "durable_s",
    "_clock",
)
LOG_FIELDS = (*LOG_CONFIG, "_pending", "lines", "flushes", "_origin")
_GUARDED = (Engine, Scheduler, RequestLog, Request, Stream, LongLivedHeap, ServerHandle, PauseLog)


def _class_snapshot() -> dict:
    return {
        cls.__name__: {k: id(v) for k, v in vars(cls).items() if not isinstance(v, int)}
        for cls in _GUARDED
    }


def _tampering(before: dict, arm: _Arm) -> list:
    """What the fix changed beyond the handle's surface (names), [] when nothing."""
    after = _class_snapshot()
    out = [
        f"{name}.{k}"
        for name, attrs in before.items()
        for k in set(attrs) | set(after[name])
        if attrs.get(k) != after[name].get(k)
    ]
    handle = arm.handle
    if handle._scheduler is not arm.scheduler or type(arm.scheduler) is not Scheduler:
        out.append("server.scheduler replaced")
    if handle._log is not arm.log or type(arm.log) is not RequestLog:
        out.append("server.request_log replaced")
    if handle._every != arm.variant.flush_every_s:
        out.append("server.flush_every_s")
    extra = set(vars(handle)) - {"_scheduler", "_log", "_every", "_flush"}
    out += [f"server.{name}" for name in sorted(extra)]
    extra = set(vars(arm.scheduler)) - {"_budget", "_threshold"}
    out += [f"server.scheduler.{name}" for name in sorted(extra)]
    log, fixed = arm.log, arm.log_fixed
    out += [f"server.request_log.{k}" for k, v in fixed.items() if vars(log).get(k) is not v]
    out += [f"server.request_log.{k}" for k in sorted(set(vars(log)) - set(LOG_FIELDS))]
    return sorted(out)


def drive_collector(log: PauseLog, *, batch: int = 200_000, cap: int = 4_000_000) -> float:
    """Allocate what ~50 s of traffic would, in containers that outlive two young collections,
    until the interpreter runs a full collection on its own (or the cap). Its length in ms
    (the stall the server would meet next), nan if none ran."""
    start = time.perf_counter()
    made = 0
    while made < cap and not log.full_since(start):
        keep = [[i] for i in range(batch)]
        made += batch
        del keep
    return log.first_full_ms(since=start)


def serve(
    arm: str, after_warmup, variant: Variant, scale: Scale, *, heap_scale: float = 1.0
) -> Run:
    """Build the state, warm up, call after_warmup(server) once, serve the measured window."""
    wall_start, perf_start = time.time(), time.perf_counter()
    hook = _resolve_hook(after_warmup)  # load a fix before anything is measured
    dev = pick_device(scale)
    thresholds = gc.get_threshold()
    gc.set_threshold(*CLASSIC_THRESHOLDS)  # the same collector schedule on 3.11-3.13
    try:
        run = _Arm(arm, variant, scale, dev, heap_scale).run(hook)
    finally:  # what a fresh process does not need, an in-process caller does
        gc.set_threshold(*thresholds)
    run.wall_start, run.wall_end = wall_start, time.time()
    run.perf_elapsed_s = time.perf_counter() - perf_start
    return run


class _Arm:
    """One arm in this process: the server, its logs, what the run recorded."""

    def __init__(self, arm: str, variant: Variant, scale: Scale, dev: str, heap_scale: float):
        global HEAP
        self.arm, self.variant, self.scale, self.dev = arm, variant, scale, dev
        self.heap = HEAP = LongLivedHeap(
            int(variant.heap_objects * heap_scale), 50_000, variant.seed
        )
        self.sched = schedule(variant, scale.duration_s, variant.seed)
        self.n = n = len(self.sched[0])
        self.log = RequestLog(variant.volume_ms, n)
        self.scheduler = Scheduler()
        self.handle = ServerHandle(self.scheduler, self.log, variant.flush_every_s)
        self.engine = Engine(variant, self.heap, dev, self.handle)
        self.pauses, self.slow = PauseLog(), SlowCallbackLog(SLOW_CALLBACK_S)
        self.rec = {"live": [], "itl": array("d"), "steps": [], "done": [None] * n}
        self.freed = np.full(n, np.nan)
        self.out: dict = {}

    def run(self, hook) -> Run:
        gc.collect()
        self.heap_tracked = len(gc.get_objects())
        self.slow.install()
        self.pauses.install()
        try:
            asyncio.run(self._main(hook))
            self.intact = self.pauses.installed() and self.slow.installed()
            self.next_full_ms = drive_collector(self.pauses)  # then count what it left
        finally:
            self.pauses.remove()
            self.slow.remove()
            FREED["at"] = np.zeros(0)
            if os.path.exists(self.log.path):  # a fix that crashed the run: no file left
                os.unlink(self.log.path)
        return self._collect()

    async def _main(self, hook) -> None:
        engine, handle, out = self.engine, self.handle, self.out
        stop = asyncio.Event()
        flusher = asyncio.create_task(_flush_task(handle, stop), name="request-log")
        warm = schedule(self.variant, self.scale.warmup_s, self.variant.seed + 1)
        await asyncio.create_task(
            engine.run_phase(warm, first_index=-1, origin=time.perf_counter(), rec=self.rec),
            name="engine",
        )
        before = _class_snapshot()
        self.log_fixed = {k: vars(self.log)[k] for k in LOG_CONFIG}
        t = time.perf_counter()
        if hook is not None:
            hook(handle)
        out["after_warmup_ms"] = (time.perf_counter() - t) * 1e3
        origin = time.perf_counter()
        self.log.set_origin(origin)
        FREED["at"], FREED["origin"] = self.freed, origin
        await asyncio.create_task(
            engine.run_phase(self.sched, first_index=0, origin=origin, rec=self.rec),
            name="engine",
        )
        out["end_s"], out["origin"] = time.perf_counter() - origin, origin
        out["monitors_intact"] = self.slow.installed() and self.pauses.installed()
        stop.set()
        await flusher
        await asyncio.to_thread(self.log.close)  # the last lines, then the file is removed
        out["tampered"] = _tampering(before, self)

    def _collect(self) -> Run:
        global HEAP
        out, done, sched, n = self.out, self.rec["done"], self.sched, self.n
        origin, end_s = out["origin"], out["end_s"]
        requests, prefilled = [], np.zeros(n, dtype=np.int64)
        for i in range(n):
            first, finish, tokens, pre = done[i] if done[i] is not None else (np.nan,) * 2 + (0, 0)
            requests.append(
                RequestRecord(
                    i,
                    float(sched[0][i]),
                    float(first),
                    float(finish),
                    int(tokens),
                    int(sched[1][i]),
                )  # fmt: skip
            )
            prefilled[i] = pre
        unfreed = sum(1 for i in range(n) if done[i] is not None and np.isnan(self.freed[i]))
        heap_intact = HEAP is self.heap and self.heap.intact()
        HEAP = None
        live = np.array(self.rec["live"], dtype=np.float64).reshape(-1, 2)
        s = self.scheduler
        return Run(
            arm=self.arm,
            device=self.dev,
            variant=self.variant,
            scale=self.scale,
            requests=requests,
            steps=[Step(*row) for row in self.rec["steps"]],
            collections=self.pauses.entries(origin, 0.0, end_s),
            slow_callbacks=self.slow.entries(origin, 0.0, end_s),
            itl_ms=np.frombuffer(self.rec["itl"], dtype=np.float64) * 1e3,
            window_s=end_s,
            live_t_s=live[:, 0],
            live_requests=live[:, 1].astype(np.int64),
            freed_s=self.freed,
            unfreed_after_drive=int(unfreed),
            next_full_ms=self.next_full_ms,
            log_written_s=self.log.written_s,
            log_durable_s=self.log.durable_s,
            flushes=self.log.flushes,
            prefill_done=prefilled,
            history_size=HISTORY_SIZE,
            heap_tracked_objects=self.heap_tracked,
            heap_intact=heap_intact,
            frozen_objects=gc.get_freeze_count(),
            gc_enabled_end=gc.isenabled(),
            thresholds_end=gc.get_threshold(),
            scheduler_end=(s.max_num_batched_tokens, s.long_prefill_token_threshold),
            after_warmup_ms=out["after_warmup_ms"],
            wall_start=0.0,
            wall_end=0.0,
            perf_elapsed_s=0.0,
            tampered=out["tampered"],
            monitors_intact=bool(self.intact and out["monitors_intact"]),
        )


def probe_hook(after_warmup, *, flush_every_s: float = 1.0) -> dict:
    """Call after_warmup once on a server with nothing behind it (no model, no traffic) and
    say what it changed: the checks run this, in a second or two, before any workload.
    It also writes one request-log line, runs the request-log task's flush once, and says
    how long the line took to become durable (nan: not within a flush period and a second)."""
    hook = _resolve_hook(after_warmup)
    scheduler = Scheduler()
    log = RequestLog(0.0, 1)
    handle = ServerHandle(scheduler, log, flush_every_s)

    async def main() -> float:
        if hook is not None:
            hook(handle)
        log.set_origin(time.perf_counter())
        log.write(0, "probe\n")
        await handle.flush_request_log(log)
        deadline = time.perf_counter() + flush_every_s + 1.0
        while np.isnan(log.durable_s[0]) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        return float(log.durable_s[0] - log.written_s[0])

    durable_after_s = asyncio.run(main())
    log._file.close()
    if os.path.exists(log.path):
        os.unlink(log.path)
    return {
        "gc_enabled": gc.isenabled(),
        "frozen": gc.get_freeze_count(),
        "thresholds": gc.get_threshold(),
        "scheduler": (scheduler.max_num_batched_tokens, scheduler.long_prefill_token_threshold),
        "flush_replaced": handle.flush_request_log is not flush_on_loop,
        "durable_after_s": durable_after_s,
    }
