"""The compiled prefill server: one run of its traffic in a fresh process, as data.

    >>> from labsupport.scenarios.memory_grows_with_traffic import server
    >>> server.MiB
    1048576

    run = server.run(variant, scale="suite")                 # as deployed
    run = server.run(variant, scale="suite", fix=(capture_shapes, serve, warm_up))
    server.evidence(run)                                     # what on-call can read

A run builds the model, compiles it as the variant's deployment does (`torch.compile` with
`mode="reduce-overhead"` on a GPU; on the CPU the same call with `labsupport.compiler`'s
`GraphRecorder` as the backend, the stand-in for CUDA graphs) and serves the variant's requests
one batch at a time. The server logs one line per request; torch's own logs
(`TORCH_LOGS=recompiles` and its warnings) go to the same log, in order. Per request it
measures the wall time of the call, the memory reserved afterwards (`torch.cuda.memory_reserved`
on a GPU; on the CPU the weights plus every recording's private pool) and, for the checks,
what ran (a compile, a recording, a replay or plain eager code) and the logits at a few probe
points. With `fix`, the learner's `capture_shapes(seen, max_batch, max_length)` picks the shapes,
`warm_up(step, shapes)` runs before the traffic and `serve(step, ids, shapes)` serves each
request; the run reports what happened, the checks judge it. A fixed run stops at the first
request that is not a replay (it has failed: no need to serve the rest).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass, field

from labsupport import isolate, wire

__all__ = ["MiB", "RequestRecord", "Run", "run", "serve_traffic", "evidence"]

MiB = 1 << 20
ENTRY = "labsupport.scenarios.memory_grows_with_traffic.server:serve_traffic"
ONE_THREAD = isolate.ONE_BLAS_THREAD
PATHS = ("compile", "record", "replay", "eager")
_WHAT_RAN = {
    "compile": "a new compile (Dynamo compiled the model again)",
    "record": "a new recording (a CUDA graph recorded for a new size)",
    "eager": "plain eager code (no compiled graph ran it)",
}


@wire.record
@dataclass(frozen=True)
class RequestRecord:
    """One request as the server served it."""

    index: int
    batch: int
    length: int
    latency_ms: float  # wall time of the call that served it
    reserved_bytes: int  # memory reserved right after it
    path: str  # what ran: "compile", "record", "replay" or "eager" (PATHS)
    out_shape: tuple  # the shape of the logits it returned


@wire.record
@dataclass(frozen=True)
class Run:
    """A run of the server over its traffic: what it served, logged and kept."""

    arm: str  # "deployed" or "fixed"
    seed: int
    device: str
    torch_version: str
    baseline_reserved_bytes: int  # the weights, before warm-up and traffic
    warmed_reserved_bytes: int  # after warm-up (the baseline when there is none)
    requests: list = field(default_factory=list)  # RequestRecord, in order
    log: list = field(default_factory=list)  # the server's log lines, torch's included
    compiled_graphs: int = 0  # graphs Dynamo compiled, warm-up included
    recordings: list = field(default_factory=list)  # (graph, shapes, pool_bytes, call)
    warmup_calls: int = 0  # compiled-model calls during warm-up
    stance: str = "default"  # torch.compile's stance once warm-up was done
    shapes: list = field(default_factory=list)  # the fix's capture shapes
    probes: list = field(default_factory=list)  # per request: [(row, pos, logits)]
    error: str = ""  # what went wrong in the learner's code, if it did
    wall_start: float = 0.0
    wall_end: float = 0.0
    flags: list = field(default_factory=list)  # what the learner's code touched (grading.flags)

    @property
    def final_reserved_bytes(self) -> int:
        return self.requests[-1].reserved_bytes if self.requests else self.warmed_reserved_bytes

    def paths(self) -> dict:
        """How many requests each path served."""
        return {p: sum(r.path == p for r in self.requests) for p in PATHS}


# ---- the fresh process -----------------------------------------------------------------------
class _Log:
    """The server's log: torch's handlers write here, and so does the server."""

    def __init__(self) -> None:
        # a real file: torch's handlers ask their stream for a file descriptor
        self.stream = tempfile.TemporaryFile("w+", encoding="utf-8")

    def redirect_torch(self) -> None:
        import torch._logging

        torch._logging.set_logs(recompiles=True)
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if name.startswith("torch") and isinstance(logger, logging.Logger):
                for handler in logger.handlers:  # the console handlers, not the trace file's
                    if type(handler) is logging.StreamHandler:
                        handler.setStream(self.stream)

    def info(self, message: str) -> None:
        now = time.time()
        stamp = time.strftime("%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e3):03d}"
        self.stream.write(f"INFO {stamp} [server.py] {message}\n")

    def lines(self) -> list[str]:
        self.stream.flush()
        self.stream.seek(0)
        return self.stream.read().splitlines()


class _Meter:
    """Memory reserved and what ran, on a GPU or on the stand-in."""

    def __init__(self, device: str, recorder, weights_bytes: int):
        self.device, self.recorder, self.weights_bytes = device, recorder, weights_bytes
        self.recorded_shapes: set = set()

    def reserved_bytes(self) -> int:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            return int(torch.cuda.memory_reserved())
        return self.weights_bytes + self.recorder.reserved_bytes()

    def counts(self) -> tuple[int, int, int]:
        """(graphs compiled, recordings, replays) so far."""
        if self.recorder is not None:
            r = self.recorder
            return r.graphs, len(r.recordings), r.replays
        return _gpu_counts()

    def path(self, before: tuple, after: tuple) -> str:
        if after[0] > before[0]:
            return "compile"
        if after[1] > before[1]:
            return "record"
        if after[2] > before[2]:
            return "replay"
        return "eager"


_TREE_CALLS = {"record_function": 0, "run_eager": 0, "execute_node": 0}


def _count_tree_calls() -> None:
    """Count what CUDA graph trees do per call (a recording, its warm-up run, a replay): torch
    keeps no counter of replays, so the server's meter wraps the manager's three paths."""
    from torch._inductor import cudagraph_trees

    manager = cudagraph_trees.CUDAGraphTreeManager
    for name in _TREE_CALLS:
        original = getattr(manager, name)
        if getattr(original, "_counted", False):
            continue

        def counted(self, *args, _name=name, _original=original, **kwargs):
            _TREE_CALLS[_name] += 1
            return _original(self, *args, **kwargs)

        counted._counted = True
        setattr(manager, name, counted)


def _gpu_counts() -> tuple[int, int, int]:
    """Graphs Dynamo compiled, CUDA graphs recorded or warmed up for recording (CUDA graph
    trees), and replays; a call that does none of these ran eager code (Dynamo's fallback)."""
    from torch._dynamo.utils import counters

    graphs = int(counters["stats"]["unique_graphs"])
    recorded = _TREE_CALLS["record_function"] + _TREE_CALLS["run_eager"]
    return graphs, recorded, _TREE_CALLS["execute_node"]


def _resolve(fn):
    """A callable, an exercise reference or a notebook function sent over (`.load()`), or
    "module:function"."""
    if hasattr(fn, "load"):
        return fn.load()
    if isinstance(fn, str):
        from labsupport.isolate import _resolve as resolve_target

        return resolve_target(fn)
    return fn


def _weights_bytes(model) -> int:
    from labsupport.memory.simulator import CachingAllocatorSim

    sim = CachingAllocatorSim()
    for p in model.parameters():
        sim.malloc(p.numel() * p.element_size())
    return sim.memory_reserved()


def serve_traffic(
    variant, n_requests: int, arm: str = "deployed", fix=None, probe_points=None
) -> Run:
    """Serve `n_requests` of the variant's traffic in this process (a fresh one: see `run`)."""
    import torch
    import torch._dynamo

    from labsupport import progress
    from labsupport.compiler import GraphRecorder
    from labsupport.scenarios.memory_grows_with_traffic import model as model_mod
    from labsupport.scenarios.memory_grows_with_traffic import traffic

    torch.set_num_threads(1)
    torch._dynamo.reset()  # Dynamo's caches live on the code object: start from none
    log = _Log()
    log.redirect_torch()
    torch._dynamo.config.recompile_limit = variant.recompile_limit
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model_mod.build(device)
    recorder = None if device == "cuda" else GraphRecorder()
    if recorder is None:
        _count_tree_calls()
        step = torch.compile(model, mode="reduce-overhead", dynamic=variant.dynamic)
    else:
        step = torch.compile(model, backend=recorder.backend, dynamic=variant.dynamic)
    meter = _Meter(device, recorder, _weights_bytes(model))
    wall_start = time.time()
    baseline = meter.reserved_bytes()
    shapes_seen = traffic.shapes(variant, n_requests)
    shapes, serve = [], None
    error = ""
    log.info(f"model loaded on {device}; compiled with mode='reduce-overhead'")
    with torch.no_grad():
        if fix is not None:
            capture_shapes, serve, warm_up = (_resolve(f) for f in fix)
            try:
                shapes = [tuple(int(x) for x in s) for s in capture_shapes(
                    traffic.distinct(shapes_seen), variant.max_batch, variant.max_length
                )]  # fmt: skip
                warm_up(step, shapes)
            except Exception as exc:  # noqa: BLE001 - the learner's code: report, do not crash
                error = f"warm-up: {type(exc).__name__}: {exc}"
        warm_counts = meter.counts()
        warmed = meter.reserved_bytes()
        stance = torch._dynamo.eval_frame._stance.stance
        records, probes = [], []
        for index, (b, length) in enumerate(shapes_seen):
            if error:
                break
            ids = torch.from_numpy(traffic.token_ids(variant, index, (b, length))).to(device)
            log.info(f"request {index}: batch {b} x {length} tokens")
            before = meter.counts()
            t0 = time.perf_counter()
            try:
                out = step(ids) if serve is None else serve(step, ids, shapes)
                if device == "cuda":
                    torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001
                error = f"request {index} (batch {b} x {length}): {type(exc).__name__}: {exc}"
                log.info(f"request {index} failed: {type(exc).__name__}")
                break
            latency_ms = (time.perf_counter() - t0) * 1e3
            after = meter.counts()
            reserved = meter.reserved_bytes()
            out_shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
            points = []
            for row, pos in (probe_points or {}).get(index, ()):
                ok = isinstance(out, torch.Tensor) and out.dim() == 3
                ok = ok and row < out.shape[0] and pos < out.shape[1]
                values = out[row, pos].float().cpu().numpy() if ok else None
                points.append((row, pos, values))
            probes.append(points)
            records.append(
                RequestRecord(
                    index,
                    b,
                    length,
                    round(latency_ms, 3),
                    reserved,
                    meter.path(before, after),
                    out_shape,
                )  # fmt: skip
            )
            log.info(
                f"request {index} done in {latency_ms:.1f} ms; "
                f"memory reserved {reserved / MiB:.1f} MiB"
            )
            progress.report(index + 1, len(shapes_seen))
            if serve is not None and records[-1].path != "replay":
                error = (
                    f"request {index} (batch {b} x {length}) was served by "
                    f"{_WHAT_RAN[records[-1].path]} under traffic, not by a replay of a graph "
                    "recorded during warm-up; the run stopped there"
                )
                log.info(f"request {index}: not a replay, stopping")
    counts = meter.counts()
    if recorder is not None:
        recordings = [(r.graph, r.shapes, r.pool_bytes, r.call) for r in recorder.recordings]
    else:  # a GPU: CUDA graph trees recorded them; their pools are in memory_reserved
        recordings = [(-1, (), 0, 0)] * _TREE_CALLS["record_function"]
    return Run(
        arm=arm,
        seed=variant.seed,
        device=torch.cuda.get_device_name(0) if device == "cuda" else "cpu (stand-in)",
        torch_version=torch.__version__,
        baseline_reserved_bytes=baseline,
        warmed_reserved_bytes=warmed,
        requests=records,
        log=log.lines(),
        compiled_graphs=counts[0],
        recordings=recordings,
        warmup_calls=warm_counts[1] + warm_counts[2],
        stance=str(stance),
        shapes=[list(s) for s in shapes],
        probes=probes,
        error=error,
        wall_start=wall_start,
        wall_end=time.time(),
    )


# ---- the caller's side -----------------------------------------------------------------------
class RunFailed(RuntimeError):
    """The run's process failed (it crashed, ran out of time or of memory)."""


def run(
    variant,
    *,
    scale: str = "full",
    fix=None,
    probe_points=None,
    timeout_s: float = 240,
    echo=None,
) -> Run:
    """Serve the variant's traffic in a fresh process; `fix` = (capture_shapes, serve, warm_up),
    notebook functions or exercise references (they run contained)."""
    from labsupport import isolate, portable

    arm = "deployed" if fix is None else "fixed"
    sent = None if fix is None else tuple(portable.sendable(f) for f in fix)
    r = isolate.run_function(
        ENTRY,
        variant,
        variant.requests(scale),
        arm,
        sent,
        probe_points,
        timeout_s=timeout_s,
        extra_env=ONE_THREAD,
        echo=echo,
    )
    if not r.ok:
        raise RunFailed(f"the {arm} server's run failed: {r.error}")
    if not isinstance(r.value, Run):
        raise RunFailed(f"the {arm} server's run returned {type(r.value).__name__}, not a run")
    return dataclasses.replace(r.value, flags=list(r.flags))


def evidence(run: Run) -> dict:
    """What on-call can read of a run: the server's log (torch's lines included), and per
    request its shape, latency and memory reserved (the dashboard). No bookkeeping of what ran.
    """
    return {
        "log": list(run.log),
        "baseline_reserved_mib": round(run.warmed_reserved_bytes / MiB, 3),
        "requests": [
            {
                "request": r.index,
                "batch": r.batch,
                "length": r.length,
                "latency_ms": r.latency_ms,
                "reserved_mib": round(r.reserved_bytes / MiB, 3),
            }
            for r in run.requests
        ],
    }
