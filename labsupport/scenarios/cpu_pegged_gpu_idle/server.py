"""Lab 292's inference server in one process: an asyncio loop with the API front end and the engine.

    >>> from labsupport.scenarios import cpu_pegged_gpu_idle as lab
    >>> from labsupport.scenarios.cpu_pegged_gpu_idle import server
    >>> scale = lab.Scale(warmup_s=0.2, duration_s=1.0, device="cpu")
    >>> run = server.serve("as shipped", None, lab.variant(0), scale, long_texts=False)
    >>> all(r.served for r in run.requests), run.max_lag_ms < 1000
    (True, True)

One event loop runs everything, as a single-process server (vLLM before its V1 engine, most
FastAPI model servers) does:
- the API front end (`frontend.Frontend.handle_completion`), one task per request;
- the engine task: continuous batching of up to 32 streams, one token per stream per step.
  A step lasts what the device needs (8 ms): on a GPU a real matmul runs and is synchronised,
  on the CPU a small one; the loop sleeps the rest of the step and is free meanwhile;
- a probe task that sleeps 5 ms again and again and records how late it wakes up (the loop's
  lag), and a sampler thread that records the process's CPU time (and NVML's utilisation on
  a GPU) every 100 ms.
`configure(server)` (the fixed arm's start-up code) is called once with the `ServerHandle`,
after warm-up and before the measured window; `serve()` returns a `records.Run`.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import threading
import time
from collections import deque

import numpy as np

from labsupport.scenarios.cpu_pegged_gpu_idle import frontend, traffic
from labsupport.scenarios.cpu_pegged_gpu_idle.records import RequestRecord, Run, Scale, Variant

STEP_DEVICE_MS = 8.0  # a decode step of the deployed model on its accelerator
MAX_NUM_SEQS = 32
HIDDEN = 256
LAG_PERIOD_S = 0.005
BIN_S = 0.1
DRAIN_S = 30.0  # after the window, in-flight requests get this long to finish


def pick_device(scale: Scale) -> str:
    if scale.device != "auto":
        return scale.device
    from labsupport import device

    return "cuda" if device.cuda_available() else "cpu"


def digest(ids) -> str:
    """sha256 of a list of token ids (how a run reports what it tokenized)."""
    return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()[:16]


class Engine:
    """Continuous batching: each step gives every running stream one token."""

    def __init__(self, device: str, seed: int):
        rng = np.random.default_rng(seed)
        w = rng.standard_normal((HIDDEN, HIDDEN), dtype=np.float32) / 16
        x = rng.standard_normal((MAX_NUM_SEQS, HIDDEN), dtype=np.float32)
        self.device, self.torch = device, None
        if device == "cpu":
            self.w, self.x = w, x
        else:
            import torch

            self.torch = torch
            self.w, self.x = torch.from_numpy(w).to(device), torch.from_numpy(x).to(device)
        self.waiting: deque = deque()
        self.steps: list[tuple[float, float]] = []

    def compute(self, batch: int) -> None:
        if self.torch is None:
            float((self.x[:batch] @ self.w).sum())
        else:
            (self.x[:batch] @ self.w).sum()
            self.torch.cuda.synchronize()

    async def run(self, stop: asyncio.Event, origin: float) -> None:
        clock, running = time.perf_counter, []
        while not stop.is_set():
            while self.waiting and len(running) < MAX_NUM_SEQS:
                running.append(self.waiting.popleft())
            if not running:
                await asyncio.sleep(0.001)
                continue
            t0 = clock()
            self.compute(len(running))
            rest = STEP_DEVICE_MS / 1e3 - (clock() - t0)
            if rest > 0:
                await asyncio.sleep(rest)  # the device computes; the loop is free meanwhile
            t = clock() - origin
            for r in running:
                r.n_tokens += 1
                if r.n_tokens == 1:
                    r.first_token_s = t
                else:
                    r.max_itl_s = max(r.max_itl_s, t - r.last_token_s)
                r.last_token_s = t
                if r.n_tokens >= r.max_tokens:
                    r.finish_s = t
                    r.status = 200
                    r.done.set()
            running = [r for r in running if r.status != 200]
            self.steps.append((t0 - origin, (clock() - t0) * 1e3))


class Sampler(threading.Thread):
    """Every BIN_S: the process's CPU time (all threads) and, on a GPU, NVML's utilisation."""

    def __init__(self, origin: float, device: str):
        super().__init__(name="metrics", daemon=True)
        self.origin, self.rows, self.util = origin, [], []
        self.stop = threading.Event()
        self.nvml = None
        if device == "cuda":
            try:
                import pynvml

                pynvml.nvmlInit()
                self.nvml = (pynvml, pynvml.nvmlDeviceGetHandleByIndex(0))
            except Exception:  # noqa: BLE001 - no NVML: utilisation is not sampled
                self.nvml = None

    def run(self) -> None:
        while not self.stop.wait(BIN_S):
            self.rows.append((time.perf_counter() - self.origin, time.process_time()))
            if self.nvml is not None:
                pynvml, handle = self.nvml
                self.util.append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)


async def _lag_probe(stop: asyncio.Event, origin: float, out: list, ticks: bool) -> None:
    clock = time.perf_counter
    last_tick = 0.0
    while not stop.is_set():
        t = clock()
        await asyncio.sleep(LAG_PERIOD_S)
        now = clock()
        out.append((now - origin, (now - t - LAG_PERIOD_S) * 1e3))
        if ticks and now - last_tick >= 0.1:  # the incident run's heartbeat on stdout
            print(f"tick {now - origin:.2f}", flush=True)
            last_tick = now


async def _one_request(front, engine, req, origin: float) -> None:
    try:
        admitted = await front.handle_completion(req)
    except Exception:  # noqa: BLE001 - the server answers 500 and goes on
        req.status, req.finish_s = 500, time.perf_counter() - origin
        return
    now = time.perf_counter() - origin
    if not admitted:
        req.finish_s = now
        return
    req.admitted_s, req.done = now, asyncio.Event()
    engine.waiting.append(req)
    await req.done.wait()


async def _drive(front, engine, requests, origin: float, tasks: list) -> None:
    for req in requests:
        delay = origin + req.arrival_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one_request(front, engine, req, origin)))


async def _window(front, engine, requests, *, limit_s: float, ticks: bool = False) -> dict:
    origin = time.perf_counter()
    stop, lag, tasks = asyncio.Event(), [], []
    sampler = Sampler(origin, engine.device)
    sampler.start()
    engine.steps = []
    eng = asyncio.create_task(engine.run(stop, origin), name="engine")
    probe = asyncio.create_task(_lag_probe(stop, origin, lag, ticks), name="lag-probe")
    await _drive(front, engine, requests, origin, tasks)
    await asyncio.wait(tasks, timeout=max(0.1, limit_s - (time.perf_counter() - origin)))
    end = time.perf_counter() - origin
    stop.set()
    sampler.stop.set()
    await asyncio.gather(eng, probe)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    sampler.join(1.0)
    return {"origin": origin, "end": end, "lag": lag, "sampler": sampler, "steps": engine.steps}


def _resolve(configure):
    if configure is None or callable(configure):
        return configure
    if hasattr(configure, "load"):
        return configure.load()
    from labsupport.isolate import _resolve as resolve

    return resolve(configure)


_GUARDED = (frontend.Frontend, frontend.ServerHandle, Engine)


def _snapshot() -> dict:
    from labsupport.bpe.tokenizer import Tokenizer

    return {c.__name__: {k: id(v) for k, v in vars(c).items()} for c in (*_GUARDED, Tokenizer)}


def _bins(end_s: float, steps, sampler: Sampler) -> tuple:
    edges = np.arange(0.0, end_s + BIN_S, BIN_S)
    busy = np.zeros(max(len(edges) - 1, 0))
    for start, _ in steps:
        lo, hi = start, start + STEP_DEVICE_MS / 1e3
        for b in range(int(lo // BIN_S), min(int(hi // BIN_S) + 1, busy.size)):
            busy[b] += max(0.0, min(hi, edges[b + 1]) - max(lo, edges[b])) / BIN_S
    rows = np.array(sampler.rows, dtype=np.float64).reshape(-1, 2)
    cpu = np.diff(rows[:, 1]) / np.maximum(np.diff(rows[:, 0]), 1e-9) if len(rows) > 1 else []
    n = min(busy.size, len(cpu))
    t = rows[1 : n + 1, 0] if n else np.zeros(0)
    return t, np.asarray(cpu[:n], dtype=np.float64), np.minimum(busy[:n], 1.0)


def serve(
    arm: str,
    configure,
    variant: Variant,
    scale: Scale,
    *,
    ranks: dict | None = None,
    long_texts: bool = True,
) -> Run:
    """Warm up, call configure(server) once (unless None), serve one measured window."""
    from labsupport import bpe

    wall_start, perf_start = time.time(), time.perf_counter()
    had = _children_now()
    hook = _resolve(configure)
    tok = bpe.from_ranks(ranks) if ranks is not None else bpe.load()
    dev = pick_device(scale)
    front = frontend.Frontend(tok, max_model_len=variant.max_model_len, path=variant.path)
    engine = Engine(dev, variant.seed)
    warm = traffic.schedule(variant, scale.warmup_s, seed_offset=1, long_texts=False)
    asyncio.run(_window(front, engine, warm, limit_s=scale.warmup_s + 5.0))
    gc.collect()
    before, ranks_id, n_ranks = _snapshot(), id(tok.ranks), len(tok.ranks)
    hook_ms = 0.0
    if hook is not None:
        t = time.perf_counter()
        hook(front.server)
        hook_ms = (time.perf_counter() - t) * 1e3
    requests = traffic.schedule(variant, scale.duration_s, long_texts=long_texts)
    try:
        w = asyncio.run(_window(front, engine, requests, limit_s=scale.duration_s + DRAIN_S))
    finally:
        errors = front.server.shutdown()
    tampered = [f"{c}.{k}" for c, a in _snapshot().items() for k in a if a[k] != before[c].get(k)]
    if front.server.tokenizer is not tok or id(tok.ranks) != ranks_id or len(tok.ranks) != n_ranks:
        tampered.append("server.tokenizer")
    if front.server.max_model_len != variant.max_model_len:
        tampered.append("server.max_model_len")
    t, cpu, busy = _bins(w["end"], w["steps"], w["sampler"])
    lag = np.array(w["lag"], dtype=np.float64).reshape(-1, 2)
    steps = np.array(w["steps"], dtype=np.float64).reshape(-1, 2)
    run = Run(
        arm=arm,
        device=dev,
        variant=variant,
        scale=scale,
        requests=[_record(r) for r in requests],
        step_start_s=steps[:, 0],
        step_ms=steps[:, 1],
        lag_t_s=lag[:, 0],
        lag_ms=lag[:, 1],
        bin_t_s=t,
        cpu_frac=cpu,
        busy_frac=busy,
        window_s=w["end"],
        hook_ms=hook_ms,
        children_left=_children_left(had) + [f"on_shutdown raised {e}" for e in errors],
        tampered=sorted(tampered),
        gpu_util=np.array(w["sampler"].util, dtype=np.float64),
    )
    run.wall_start, run.wall_end = wall_start, time.time()
    run.perf_elapsed_s = time.perf_counter() - perf_start
    return run


def _record(r) -> RequestRecord:
    return RequestRecord(
        request_id=r.request_id,
        role=r.role,
        arrival_s=r.arrival_s,
        admitted_s=r.admitted_s,
        first_token_s=r.first_token_s,
        finish_s=r.finish_s,
        n_tokens=r.n_tokens,
        status=r.status,
        prompt_chars=len(r.prompt) + sum(len(s) for s in r.stop),
        ids_digest=digest(r.prompt_ids) if isinstance(r.prompt_ids, list) else "",
        max_itl_ms=r.max_itl_s * 1e3,
    )


def _children_now() -> set[int]:
    """The pids of this process's descendants now (those a run did not start)."""
    import psutil

    return {k.pid for k in psutil.Process().children(recursive=True)}


def _children_left(before: set[int] = frozenset(), wait_s: float = 5.0) -> list[str]:
    """This process's children, not in `before`, still alive `wait_s` after shutdown (a pool
    not shut down). Children the caller already had (a test runner's own) are not counted."""
    import psutil

    me = psutil.Process()
    deadline = time.monotonic() + wait_s
    while True:
        kids = [k for k in me.children(recursive=True) if k.is_running() and k.pid not in before]
        alive = []
        for k in kids:
            try:
                line = " ".join(k.cmdline())
                # multiprocessing's resource tracker lives until this process exits, by design
                if k.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in line:
                    alive.append(f"{k.pid} {line[:80]}")
            except psutil.Error:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)
