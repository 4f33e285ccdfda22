"""Lab 276's workload: a trace of allocations on a shared card, on the GPU or the simulator.

    >>> from labsupport.scenarios.oom_despite_free_memory.workload import Op, run_trace, MiB
    >>> trace = [Op("alloc", "a", 600 * MiB), Op("request", "b", 600 * MiB)]
    >>> r = run_trace(trace, cap_bytes=1000 * MiB, backend="simulator")
    >>> r.outcome, r.failed_op_index, r.reserved_bytes // MiB
    ('oom', 1, 600)
    >>> run_trace(trace, cap_bytes=1300 * MiB, backend="simulator").outcome
    'ok'

A trace is a list of `Op`: alloc/request NAME SIZE, free NAME, empty_cache, and
`external NAME SIZE` (another process on the same card holds SIZE bytes from then on).
On a GPU, `run_trace` replays the trace in a fresh interpreter (labsupport.isolate): it caps the
process with torch.cuda.set_per_process_memory_fraction(cap_bytes / total), allocates uint8
tensors of exactly the traced sizes, catches torch.OutOfMemoryError, takes
torch.cuda.memory._snapshot() at that point, reads memory_stats(), mem_get_info() and the
card's processes (NVML), frees everything and exits. An `external` op starts (once) a second
process that takes card memory until the card has as much free as the simulated card would
have (so a card larger than the simulated 80 GB H100 behaves like it). The child sees exactly
`alloc_env` for PYTORCH_ALLOC_CONF / PYTORCH_CUDA_ALLOC_CONF (inherited values are removed),
so the default arm really runs the default allocator.
Without a GPU the same trace runs through labsupport.memory.simulator; the result is the same
record. Used in: lab 276.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from labsupport.memory.config import ALLOC_ENV_NAMES, MiB
from labsupport.memory.simulator import H100_TOTAL_BYTES, CachingAllocatorSim, OutOfMemoryError

PROBE_STEP_BYTES = 2 * MiB
OP_KINDS = ("alloc", "free", "empty_cache", "request", "external")
WORKER_PID = 24117  # the simulated card's process ids, as nvidia-smi would list them
_EXTERNAL_PIDS = (3310, 3472, 3655)
CUDA_CONTEXT_BYTES = 512 * MiB  # what a CUDA context with torch takes on an H100 (CUDA 12)


@dataclass(frozen=True)
class Op:
    """One step of a trace: alloc/request NAME SIZE, free NAME, empty_cache, external NAME SIZE."""

    kind: str
    name: str = ""
    size_bytes: int = 0

    def __post_init__(self):
        if self.kind not in OP_KINDS:
            raise ValueError(f"unknown op {self.kind!r}; expected one of {OP_KINDS}")

    def __str__(self) -> str:
        if self.kind in ("alloc", "request"):
            return f"{self.kind} {self.name} {self.size_bytes / MiB:g} MiB"
        if self.kind == "external":
            return f"{self.name} (another process) now holds {self.size_bytes / MiB:g} MiB"
        return f"free {self.name}" if self.kind == "free" else "empty_cache()"


def carved_trace(
    *,
    big_mib: int = 1000,
    pieces: int = 10,
    piece_mib: int = 100,
    request_mib: int = 200,
    empty_cache_before_request: bool = False,
) -> list[Op]:
    """Allocate and free one big tensor, carve `pieces` tensors out of its cached segment, free
    every other one (the even ones), optionally empty_cache(), then request `request_mib`
    (no request when it is 0)."""
    trace = [Op("alloc", "big", big_mib * MiB), Op("free", "big")]
    trace += [Op("alloc", f"t{k}", piece_mib * MiB) for k in range(pieces)]
    trace += [Op("free", f"t{k}") for k in range(0, pieces, 2)]
    if empty_cache_before_request:
        trace.append(Op("empty_cache"))
    return trace + ([Op("request", "req", request_mib * MiB)] if request_mib else [])


def random_trace(seed: int, *, n_ops: int = 80, cap_bytes: int = 1024 * MiB) -> list[Op]:
    """A seeded mix of small (<1 MiB), medium (1-10 MiB) and large (10-300 MiB) tensors, frees
    and the odd empty_cache, keeping live bytes under 90% of the cap so OOMs come from the
    allocator's layout. Sizes are all different, so best-fit never breaks a tie by address."""
    rng = random.Random(seed)
    used: set[int] = set()
    live: dict[str, int] = {}
    trace: list[Op] = []
    while len(trace) < n_ops:
        roll = rng.random()
        if roll < 0.05:
            trace.append(Op("empty_cache"))
            continue
        size = _distinct_size(rng, used)
        if live and (roll < 0.40 or sum(live.values()) + size > 0.9 * cap_bytes):
            name = rng.choice(sorted(live))
            del live[name]
            trace.append(Op("free", name))
            continue
        name = f"r{len(trace)}"
        live[name] = size
        trace.append(Op("alloc", name, size))
    return trace


def _distinct_size(rng: random.Random, used: set[int]) -> int:
    while True:
        kind = rng.random()
        if kind < 0.3:
            size = rng.randrange(1, 2048) * 512  # small pool
        elif kind < 0.6:
            size = rng.randrange(1 * MiB + 512, 10 * MiB, 512)
        else:
            size = rng.randrange(10 * MiB, 300 * MiB, 4096)
        if size not in used:
            used.add(size)
            return size


@dataclass(frozen=True)
class WorkloadResult:
    """What one run of a trace did, on the GPU ('cuda') or the simulator ('simulator')."""

    outcome: str  # "ok" | "oom"
    failed_op_index: int | None
    oom_message: str
    reserved_bytes: int
    allocated_bytes: int
    snapshot: dict = field(repr=False)
    memory_stats: dict = field(repr=False)
    allocator_settings: dict = field(repr=False)
    alloc_env: dict
    backend: str
    device_name: str
    torch_version: str
    cap_bytes: int
    total_bytes: int
    allowed_bytes: int
    card_free_bytes: int = 0  # mem_get_info()'s free memory at the end (at the OOM, if any)
    processes: tuple = ()  # the card's processes then: {"pid", "name", "used_bytes"}
    warnings: tuple[str, ...] = ()
    duration_s: float = 0.0
    largest_request_bytes: int | None = None  # set when run with probe_largest_request

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def expandable_segments(self) -> bool:
        """Whether expandable segments were in effect, as read back from the snapshot."""
        return bool(self.allocator_settings.get("expandable_segments")) or any(
            s.get("is_expandable") for s in self.snapshot.get("segments", [])
        )

    def describe(self) -> str:
        where = f"{self.backend} on {self.device_name}"
        first = f"OOM at op {self.failed_op_index}" if self.outcome == "oom" else "no OOM"
        return (
            f"{first} ({where}): reserved {self.reserved_bytes / MiB:.0f} MiB, allocated "
            f"{self.allocated_bytes / MiB:.0f} MiB, cap {self.cap_bytes / MiB:.0f} MiB, card "
            f"free {self.card_free_bytes / MiB:.0f} MiB"
        )


def run_trace(
    trace: list[Op],
    *,
    cap_bytes: int,
    alloc_env: Mapping[str, str] | None = None,
    backend: str = "auto",
    fresh_process: bool | None = None,
    probe_largest_request: bool = False,
    timeout_s: float = 180,
    total_bytes: int = H100_TOTAL_BYTES,
    context_bytes: int = 0,
) -> WorkloadResult:
    """Run `trace` under a `cap_bytes` memory cap with allocator settings `alloc_env`.

    backend: "cuda" (the real allocator, always in a fresh process), "simulator", or "auto"
    (cuda when a GPU is present). fresh_process=True also runs the simulator in a fresh
    interpreter. probe_largest_request: if the trace ran without OOM, bisect (2 MiB steps) for
    the largest single allocation that still succeeds afterwards. total_bytes and
    context_bytes describe the simulated card and this process's CUDA context; on a GPU they
    set how much an `external` op leaves free.
    """
    alloc_env = {k: v for k, v in (alloc_env or {}).items()}
    if backend == "auto":
        from labsupport import device

        backend = "cuda" if device.cuda_available() else "simulator"
    if backend not in ("cuda", "simulator"):
        raise ValueError(f"backend must be 'auto', 'cuda' or 'simulator', not {backend!r}")
    args = (list(trace), cap_bytes, alloc_env, probe_largest_request, total_bytes, context_bytes)
    if backend == "simulator" and not fresh_process:
        return _result(simulate_payload(*args))
    from labsupport import isolate, progress

    target = "replay_on_cuda" if backend == "cuda" else "simulate_payload"
    with progress.timed(8.0 if backend == "cuda" else 1.5, f"replaying the trace ({backend})"):
        res = isolate.run_function(
            f"{__name__}:{target}",
            *args,
            timeout_s=timeout_s,
            extra_env={k: v for k, v in alloc_env.items() if k in ALLOC_ENV_NAMES},
        )
    if not res.ok:
        tail = (res.stderr or "")[-2000:]
        raise RuntimeError(f"the {backend} replay failed in its fresh process: {res.error}\n{tail}")
    return _result(res.value)


def _result(payload: dict) -> WorkloadResult:
    payload = dict(payload)
    payload["processes"] = tuple(payload.get("processes", ()))
    payload["warnings"] = tuple(payload.get("warnings", ()))
    return WorkloadResult(
        reserved_bytes=payload["memory_stats"].get("reserved_bytes.all.current", 0),
        allocated_bytes=payload["memory_stats"].get("allocated_bytes.all.current", 0),
        allocator_settings=dict(payload["snapshot"].get("allocator_settings", {})),
        **payload,
    )


def _replay(trace, malloc, free, empty_cache, external, oom, probe: bool, cap_bytes: int) -> dict:
    """Run the ops; stop at the first OOM. The same loop drives the GPU and the simulator."""
    live: dict = {}
    out = {
        "outcome": "ok",
        "failed_op_index": None,
        "oom_message": "",
        "largest_request_bytes": None,
    }
    for index, op in enumerate(trace):
        try:
            if op.kind in ("alloc", "request"):
                live[op.name] = malloc(op.size_bytes)
            elif op.kind == "free":
                free(live.pop(op.name))
            elif op.kind == "external":
                external(op.name, op.size_bytes)
            else:
                empty_cache()
        except oom as exc:
            out.update(outcome="oom", failed_op_index=index, oom_message=str(exc))
            break
    if probe and out["outcome"] == "ok":
        fits, fails = 0, cap_bytes // PROBE_STEP_BYTES + 1  # in steps: 0 fits, above the cap not
        while fails - fits > 1:
            mid = (fits + fails) // 2
            try:
                handle = malloc(mid * PROBE_STEP_BYTES)
            except oom:
                fails = mid
                continue
            free(handle)
            del handle  # for a tensor, dropping the last reference is the free
            fits = mid
        out["largest_request_bytes"] = fits * PROBE_STEP_BYTES
    out["live"] = live
    return out


def simulate_payload(
    trace: list[Op],
    cap_bytes: int,
    alloc_env: Mapping[str, str],
    probe_largest_request: bool = False,
    total_bytes: int = H100_TOTAL_BYTES,
    context_bytes: int = 0,
) -> dict:
    """Replay `trace` through the simulator; returns the same payload as replay_on_cuda."""
    started = time.perf_counter()
    env = {k: v for k, v in alloc_env.items() if k in ALLOC_ENV_NAMES}
    sim = CachingAllocatorSim.from_env(
        env, total_bytes=total_bytes, context_bytes=context_bytes, pid=WORKER_PID
    )
    sim.set_per_process_memory_fraction(cap_bytes / total_bytes)
    names: dict[str, int] = {}

    def external(name: str, size_bytes: int) -> None:
        pid = names.setdefault(name, _EXTERNAL_PIDS[len(names) % len(_EXTERNAL_PIDS)])
        sim.other_processes[pid] = size_bytes

    out = _replay(
        trace,
        sim.malloc,
        sim.free,
        sim.empty_cache,
        external,
        OutOfMemoryError,
        probe_largest_request,
        cap_bytes,
    )
    del out["live"]
    by_pid = {pid: name for name, pid in names.items()}
    processes = [
        {"pid": pid, "name": by_pid[pid], "used_bytes": used}
        for pid, used in sorted(sim.other_processes.items())
    ]
    processes.append(
        {
            "pid": WORKER_PID,
            "name": "this process",
            "used_bytes": context_bytes + sim.memory_reserved(),
        }
    )
    return {
        **out,
        "snapshot": sim.snapshot(),
        "memory_stats": sim.memory_stats(),
        "alloc_env": dict(env),
        "backend": "simulator",
        "device_name": sim.device_name,
        "torch_version": "",
        "cap_bytes": cap_bytes,
        "total_bytes": total_bytes,
        "allowed_bytes": sim.allowed_memory_maximum,
        "card_free_bytes": sim.device_free_bytes(),
        "processes": processes,
        "warnings": sim.config.warnings,
        "duration_s": time.perf_counter() - started,
    }


_HOLDER = """
import sys, torch
held = None
print("ready", flush=True)
for line in sys.stdin:  # one line per resize: the card's free memory to leave
    keep_free = int(line)
    held = None
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(0)  # (the first call creates this process's context)
    if free > keep_free:
        held = torch.empty(free - keep_free, dtype=torch.uint8, device="cuda:0")
    print("ok", torch.cuda.mem_get_info(0)[0], flush=True)
"""


def replay_on_cuda(
    trace: list[Op],
    cap_bytes: int,
    alloc_env: Mapping[str, str],
    probe_largest_request: bool = False,
    total_bytes: int = H100_TOTAL_BYTES,
    context_bytes: int = 0,
) -> dict:
    """Runs in the fresh child process: the real caching allocator on cuda:0."""
    import subprocess
    import sys
    import warnings

    started = time.perf_counter()
    for name in ALLOC_ENV_NAMES:  # before torch reads them, which it does once per process
        if name in alloc_env:
            os.environ[name] = alloc_env[name]
        else:
            os.environ.pop(name, None)
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    holders: dict[str, subprocess.Popen] = {}

    def malloc(size_bytes: int):
        return torch.empty(size_bytes, dtype=torch.uint8, device="cuda:0")

    def external(name: str, size_bytes: int) -> None:
        # The other process leaves the card as much free memory as the simulated card would
        # have: total - its bytes - this process's context and reserved memory.
        keep_free = max(0, total_bytes - size_bytes - context_bytes - torch.cuda.memory_reserved(0))
        proc = holders.get(name)
        if proc is None:
            env = {k: v for k, v in os.environ.items() if k not in ALLOC_ENV_NAMES}
            proc = subprocess.Popen(
                [sys.executable, "-c", _HOLDER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            proc.stdout.readline()  # "ready": its own context exists now
            holders[name] = proc
        proc.stdin.write(f"{keep_free}\n")
        proc.stdin.flush()
        proc.stdout.readline()

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, total = torch.cuda.mem_get_info(0)
            torch.cuda.set_per_process_memory_fraction(cap_bytes / total, 0)
            out = _replay(
                trace,
                malloc,
                lambda tensor: None,
                torch.cuda.empty_cache,
                external,
                oom,
                probe_largest_request,
                cap_bytes,
            )
            torch.cuda.synchronize()
            snapshot = torch.cuda.memory._snapshot()
            stats = dict(torch.cuda.memory_stats(0))
            card_free, _ = torch.cuda.mem_get_info(0)
            processes = _card_processes(
                {os.getpid(): "this process"} | {p.pid: name for name, p in holders.items()}
            )
    finally:
        for proc in holders.values():
            proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    out.pop("live").clear()
    torch.cuda.empty_cache()  # leave nothing behind, even though the process exits next
    return {
        **out,
        "snapshot": snapshot,
        "memory_stats": stats,
        "alloc_env": {k: os.environ[k] for k in ALLOC_ENV_NAMES if k in os.environ},
        "backend": "cuda",
        "device_name": torch.cuda.get_device_name(0),
        "torch_version": torch.__version__,
        "cap_bytes": cap_bytes,
        "total_bytes": total,
        "allowed_bytes": int(cap_bytes / total * float(total)),
        "card_free_bytes": int(card_free),
        "processes": processes,
        "warnings": tuple(str(w.message) for w in caught if "ALLOC_CONF" in str(w.message)),
        "duration_s": time.perf_counter() - started,
    }


def _card_processes(names: dict[int, str]) -> list[dict]:
    """The card's compute processes as NVML lists them (nvidia-smi --query-compute-apps)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML (a container without it): the list stays empty
        return []
    return [
        {
            "pid": int(p.pid),
            "name": names.get(int(p.pid), "another process"),
            "used_bytes": int(p.usedGpuMemory or 0),
        }
        for p in sorted(procs, key=lambda p: p.pid)
    ]
