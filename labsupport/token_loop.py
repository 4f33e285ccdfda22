"""A decode-like serving loop that stalls for real on CPython's full (generation-2) collections.

    >>> from labsupport import gc_pauses, token_loop
    >>> cfg = gc_pauses.LoopConfig(heap_objects=20_000, warmup_s=0.2, duration_s=0.5)
    >>> arm = token_loop.serve("default", None, cfg)   # in this process; labs use gc_pauses.run_arm
    >>> arm.requests[0].ttft_ms > 0
    True

One process holds what a real inference server holds: a large heap of long-lived containers
built at start-up (tokenizer vocab, prefix-cache block index), an open-loop arrival schedule of
requests (fixed seed), continuous batching of many streams, one small matmul per token per step
(torch, on CUDA and synchronised when there is a GPU) and per-token Python objects (logprob
dicts, stream deltas). Token state lives as long as its request, so it survives two young
collections and is promoted to generation 2, which is what schedules full collections: the
generational collector (CPython 3.13 and earlier) runs generation 2 only when the objects
promoted since the last full collection exceed a quarter of the objects that survived it
(`long_lived_pending < long_lived_total / 4` skips it: `gc_collect_generations()` in
Modules/gcmodule.c up to 3.12, `gc_select_generation()` in Python/gc.c in 3.13). A full
collection walks the whole heap, so the start-up heap sets the length of every pause.
Requests and their streams reference each other (request -> stream callback -> stream ->
request), so a finished request is freed only by the cycle collector: `gc.disable()` forever
leaks every request.

`serve()` runs in whatever process calls it; `gc_pauses.run_arm` calls it in a fresh one.
"""

from __future__ import annotations

import gc
import os
import time
from array import array
from collections import deque

import numpy as np

from labsupport.gc_pauses import (
    ArmResult,
    LoopConfig,
    MemorySamples,
    PauseLog,
    RequestRecord,
)

# Module globals, as in a real server: what after_warmup() may find, and what must survive it.
HEAP: LongLivedHeap | None = None


class TokenInfo:
    """One tokenizer vocabulary entry (a BPE piece and the merge that built it)."""

    __slots__ = ("token_id", "piece", "merge")

    def __init__(self, token_id: int, piece: str, merge: list):
        self.token_id, self.piece, self.merge = token_id, piece, merge


class CachedBlock:
    """One prefix-cache block: its id, the token ids it holds, its parent block."""

    __slots__ = ("block_id", "token_ids", "parent")

    def __init__(self, block_id: int, token_ids: list, parent):
        self.block_id, self.token_ids, self.parent = block_id, token_ids, parent


class LongLivedHeap:
    """The start-up heap: every object here lives as long as the server."""

    def __init__(self, tracked_objects: int, vocab_size: int, seed: int):
        was_enabled = gc.isenabled()
        gc.disable()  # start-up cost only: the heap is the same, it is built 3x faster
        try:
            self._build(tracked_objects, vocab_size, seed)
        finally:
            if was_enabled:
                gc.enable()
        self.fingerprint = self._fingerprint()

    def _build(self, tracked_objects: int, vocab_size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        ids = list(range(vocab_size))  # shared int objects: the heap costs pointers, not ints
        self.pieces = [f"tok{i}" for i in range(vocab_size)]
        n_entries = max(1, tracked_objects // 6)  # TokenInfo + its merge list: 2 tracked each
        self.vocab: dict[str, TokenInfo] = {}
        for i in range(n_entries):
            a, b = i % vocab_size, (i * 7 + 3) % vocab_size
            self.vocab[f"{self.pieces[a]}|{i}"] = TokenInfo(i, self.pieces[a], [ids[a], ids[b]])
        n_blocks = max(1, tracked_objects // 3)  # CachedBlock + its token list: 2 tracked each
        draws = rng.integers(0, vocab_size, size=(n_blocks, 16)).tolist()
        self.blocks: dict[int, CachedBlock] = {}
        parent = None
        for i, row in enumerate(draws):
            block = CachedBlock(i, [ids[t] for t in row], parent if i % 8 else None)
            self.blocks[i] = block
            parent = block

    def _fingerprint(self) -> tuple[int, int, int]:
        last = self.blocks[len(self.blocks) - 1]
        return len(self.vocab), len(self.blocks), sum(last.token_ids)

    def intact(self) -> bool:
        """True while nobody has emptied or replaced the heap."""
        try:
            return self._fingerprint() == self.fingerprint
        except (KeyError, AttributeError):
            return False


class Logprob:
    """Per-token logprob entry, as OpenAI-compatible servers return with `logprobs=k`."""

    __slots__ = ("logprob", "rank", "decoded")

    def __init__(self, logprob: float, rank: int, decoded: str):
        self.logprob, self.rank, self.decoded = logprob, rank, decoded


class Request:
    """One generation request. Holds its stream, whose callback holds it back: a cycle."""

    __slots__ = tuple(
        "request_id arrival_s prompt_token_ids max_tokens output_token_ids logprobs on_token"
        " first_token_s last_token_s finish_s text measured".split()
    )
    live = 0  # requests not yet freed, by refcount or by the cycle collector

    def __init__(self, request_id, arrival_s, prompt_token_ids, max_tokens, measured):
        Request.live += 1
        self.request_id, self.arrival_s = request_id, arrival_s
        self.prompt_token_ids, self.max_tokens = prompt_token_ids, max_tokens
        self.output_token_ids: list[int] = []
        self.logprobs: list | None = []
        self.first_token_s = self.last_token_s = self.finish_s = 0.0
        self.text = ""
        self.measured = measured
        self.on_token = Stream(self).push  # request -> bound method -> stream -> request

    def __del__(self):
        Request.live -= 1


class Stream:
    """The response stream of one request (what an SSE handler would drain)."""

    __slots__ = ("request", "chunks")

    def __init__(self, request: Request):
        self.request = request
        self.chunks: list[str] = []

    def push(self, delta: tuple) -> None:
        self.chunks.append(delta[1])


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        import psutil

        return psutil.Process().memory_info().rss


def _tracked_objects() -> int:
    return len(gc.get_objects()) + gc.get_freeze_count()


def _resolve_hook(after_warmup):
    """None, a callable, an object with .load() (a grader's ExerciseRef), "module:function",
    or a tuple of these (called in order)."""
    if isinstance(after_warmup, (list, tuple)):
        hooks = [_resolve_hook(h) for h in after_warmup]
        return lambda: [h() for h in hooks if h is not None] and None
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


class Engine:
    """Continuous batching over an open-loop arrival schedule; one matmul per token per step."""

    def __init__(self, cfg: LoopConfig, heap: LongLivedHeap, device: str):
        import torch

        self.torch, self.cfg, self.heap, self.device = torch, cfg, heap, device
        gen = torch.Generator().manual_seed(cfg.seed)
        self.embed = torch.randn(cfg.model_vocab, cfg.hidden, generator=gen).to(device)
        self.weight = (torch.randn(cfg.hidden, cfg.hidden, generator=gen) / 16).to(device)
        self.history: deque[Request] = deque(maxlen=cfg.history_size)  # recent requests
        self.itl_s: list[float] = []  # replaced by an array('d') per phase
        self.next_id = 0

    def _sync(self) -> None:
        if self.device != "cpu":
            self.torch.cuda.synchronize()

    def _forward(self, last_ids: list[int], prefill_tokens: int):
        torch = self.torch
        if prefill_tokens:
            rows = torch.arange(prefill_tokens, device=self.device) % self.cfg.model_vocab
            (self.embed[rows] @ self.weight).sum()  # the prompt's share of the step
        x = self.embed[torch.tensor(last_ids, device=self.device) % self.cfg.model_vocab]
        top = torch.topk(torch.log_softmax(x @ self.weight, dim=-1), self.cfg.logprobs_k)
        self._sync()
        return top.values.tolist(), top.indices.tolist()

    def run_phase(self, arrivals_s, prompt_lens, max_tokens, measured: bool, clock_origin: float):
        """Serve one schedule to completion; times in the result are relative to clock_origin."""
        cfg, pieces, vocab_n = self.cfg, self.heap.pieces, len(self.heap.pieces)
        itl = array("d")
        finished: list[tuple] = []  # (id, arrival_s, first_token_s, finish_s, n_tokens)
        samples = MemorySamples.empty()
        running: list[Request] = []
        waiting: deque[Request] = deque()
        n, i = len(arrivals_s), 0
        step_floor_s = cfg.step_floor_ms / 1e3
        next_sample = 0.0
        clock = time.perf_counter
        while True:
            now = clock() - clock_origin
            while i < n and arrivals_s[i] <= now:
                prompt = [(self.next_id * 31 + k) % vocab_n for k in range(int(prompt_lens[i]))]
                waiting.append(
                    Request(
                        self.next_id, float(arrivals_s[i]), prompt, int(max_tokens[i]), measured
                    )
                )
                self.next_id += 1
                i += 1
            if measured and now >= next_sample:
                samples.add(now, Request.live, _rss_bytes(), gc.get_count())
                next_sample += cfg.sample_every_s
            if not running and not waiting:
                if i >= n:
                    break
                time.sleep(max(0.0, min(arrivals_s[i] - now, 0.01)))
                continue
            prefill = 0
            while waiting and len(running) < cfg.max_batch:
                req = waiting.popleft()
                prefill += len(req.prompt_token_ids)
                running.append(req)
            last_ids = [
                r.output_token_ids[-1] if r.output_token_ids else r.prompt_token_ids[-1]
                for r in running
            ]
            values, indices = self._forward(last_ids, prefill)
            t = clock() - clock_origin
            still: list[Request] = []
            for req, vals, idx in zip(running, values, indices, strict=True):
                tid = (idx[0] * 131 + req.request_id) % vocab_n
                req.logprobs.append(
                    {
                        (idx[r] * 131 + req.request_id) % vocab_n: Logprob(
                            vals[r], r + 1, pieces[tid]
                        )
                        for r in range(len(idx))
                    }
                )
                req.output_token_ids.append(tid)
                req.on_token((tid, pieces[tid]))
                if req.first_token_s == 0.0:
                    req.first_token_s = t
                elif req.measured:
                    itl.append(t - req.last_token_s)
                req.last_token_s = t
                if len(req.output_token_ids) >= req.max_tokens:
                    req.finish_s = t
                    req.text = "".join(req.on_token.__self__.chunks)
                    req.logprobs = None  # response sent: drop per-token state, keep the summary
                    if req.measured:
                        finished.append(
                            (
                                req.request_id,
                                req.arrival_s,
                                req.first_token_s,
                                req.finish_s,
                                len(req.output_token_ids),
                            )
                        )
                    self.history.append(req)  # evicts the oldest: it dies later, as a cycle
                else:
                    still.append(req)
            running = still
            rest = step_floor_s - (clock() - clock_origin - now)
            if rest > 0:
                time.sleep(rest)  # the rest of a real model's forward pass on the accelerator
        return finished, itl, samples


def _schedule(cfg: LoopConfig, duration_s: float, seed: int):
    rng = np.random.default_rng(seed)
    n = int(duration_s * cfg.arrival_rate_per_s * 1.5) + 16
    arrivals = np.cumsum(rng.exponential(1.0 / cfg.arrival_rate_per_s, size=n))
    arrivals = arrivals[arrivals < duration_s]
    prompt = rng.integers(cfg.prompt_tokens[0], cfg.prompt_tokens[1] + 1, size=len(arrivals))
    out = rng.integers(cfg.output_tokens[0], cfg.output_tokens[1] + 1, size=len(arrivals))
    return arrivals, prompt, out


def pick_device(cfg: LoopConfig) -> str:
    if cfg.device != "auto":
        return cfg.device
    from labsupport import device

    return "cuda" if device.cuda_available() else "cpu"


def serve(arm: str, after_warmup, cfg: LoopConfig) -> ArmResult:
    """Build the heap, warm up, call after_warmup once, serve the measured schedule."""
    import torch

    hook = _resolve_hook(after_warmup)  # load learner code before anything is measured
    dev = pick_device(cfg)
    threads, thresholds = torch.get_num_threads(), gc.get_threshold()
    torch.set_num_threads(1)  # the loop owns one core; more threads only add noise here
    if cfg.gc_thresholds is not None:
        gc.set_threshold(*cfg.gc_thresholds)
    try:
        return _serve(arm, hook, cfg, dev)
    finally:  # what a fresh process does not need, an in-process caller does
        torch.set_num_threads(threads)
        gc.set_threshold(*thresholds)


def _serve(arm: str, hook, cfg: LoopConfig, dev: str) -> ArmResult:
    global HEAP
    engine_heap = LongLivedHeap(cfg.heap_objects, cfg.vocab_size, cfg.seed)
    HEAP = engine_heap
    engine = Engine(cfg, engine_heap, dev)
    t = time.perf_counter()
    gc.collect()
    full_gc_ms = (time.perf_counter() - t) * 1e3
    heap_tracked = _tracked_objects()
    log = PauseLog(probe=lambda: Request.live)
    with log:
        warm = _schedule(cfg, cfg.warmup_s, cfg.seed + 1)
        engine.run_phase(*warm, measured=False, clock_origin=time.perf_counter())
        tracked_start = _tracked_objects()
        t = time.perf_counter()
        if hook is not None:
            hook()
        after_warmup_ms = (time.perf_counter() - t) * 1e3
        sched = _schedule(cfg, cfg.duration_s, cfg.seed)
        origin = time.perf_counter()
        finished, itl, samples = engine.run_phase(*sched, measured=True, clock_origin=origin)
        end_s = time.perf_counter() - origin
        samples.add(end_s, Request.live, _rss_bytes(), gc.get_count())
    tracked_end = _tracked_objects()
    intact = HEAP is engine_heap and engine_heap.intact()
    HEAP = None
    return ArmResult(
        arm=arm,
        device=dev,
        config=cfg,
        requests=[RequestRecord(*r) for r in finished],
        itl_ms=np.frombuffer(itl, dtype=np.float64) * 1e3,
        pauses=log.pauses(origin=origin, since_s=0.0, until_s=end_s),
        samples=samples.freeze(),
        live_after_full=log.probed(2, origin=origin, since_s=0.0, until_s=end_s),
        window_s=end_s,
        heap_tracked_objects=heap_tracked,
        full_gc_ms_at_start=full_gc_ms,
        tracked_start=tracked_start,
        tracked_end=tracked_end,
        frozen_objects=gc.get_freeze_count(),
        gc_enabled_end=gc.isenabled(),
        thresholds_end=gc.get_threshold(),
        heap_intact=intact,
        after_warmup_ms=after_warmup_ms,
        requests_arrived=len(sched[0]),
    )
