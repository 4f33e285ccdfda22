"""Memory-bandwidth workloads timed on the CPU or a GPU, with the duty cycles dashboards show.

    >>> from labsupport.telemetry import bandwidth as bw
    >>> w = bw.Workload("copy", "copy", size_bytes=4 * 2**20)
    >>> w.bytes_per_rep(), w.flops_per_rep()
    ((4194304, 4194304), 0)
    >>> [m.name for m in bw.measure([w], device="cpu", min_s=0.05, windows=1)]
    ['copy']

A `Workload` is one kind of memory traffic, sized in bytes: a `copy` of one buffer into
another, `small_copies` (the same copy of a small buffer, one call after another), a `gemm`
(n x n by n x n), a `gemv` (a rows x cols matrix times a vector: every weight read once per
step, as a decode step reads a model's weights), a `batched_gemm` (the same matrix times a
batch of columns) and `block_copies` (blocks gathered from a pool one copy call each, as a
KV-cache swap does block by block). `measure` runs each for at least `min_s` per window (on
the CPU, `min_s` of its own CPU time), the workloads' windows in turn, keeps each one's best of
`windows`, and returns `Measured`: the bytes it read and wrote, the floating-point operations,
the seconds, and beside them the readings a dashboard would show for that window: on the CPU
the thread's CPU utilisation (its CPU time over the wall time); on a GPU NVML's
utilization.gpu and .memory and, on Hopper and later, GPM's DRAM bandwidth utilisation
(`labsupport.telemetry.nvml`). Byte counts are the workload's own traffic to its buffers (the
minimum a perfect cache would move), decimal GB in every rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from labsupport import wire

KINDS = ("copy", "small_copies", "gemm", "gemv", "batched_gemm", "block_copies")
ELEMENT_BYTES = {"cpu": 4, "cuda": 2}  # float32 on the CPU, bfloat16 on a GPU


@wire.record
@dataclass(frozen=True)
class Workload:
    """One workload: its kind and its size (everything in bytes or elements)."""

    name: str
    kind: str
    size_bytes: int = 0  # copy, small_copies: the buffer; block_copies: one block
    n: int = 0  # gemm: the matrix side; gemv, batched_gemm: rows of the matrix
    cols: int = 0  # gemv, batched_gemm: columns of the matrix
    batch: int = 0  # batched_gemm: columns multiplied at once
    pool_bytes: int = 0  # block_copies: the pool the blocks are gathered from
    blocks: int = 0  # block_copies: blocks per step
    element_bytes: int = 4

    def bytes_per_rep(self) -> tuple[int, int]:
        """(bytes read, bytes written) by one repetition."""
        e = self.element_bytes
        if self.kind in ("copy", "small_copies"):
            return self.size_bytes, self.size_bytes
        if self.kind == "block_copies":
            return self.blocks * self.size_bytes, self.blocks * self.size_bytes
        if self.kind == "gemm":
            return 2 * self.n * self.n * e, self.n * self.n * e
        if self.kind == "gemv":
            return (self.n * self.cols + self.cols) * e, self.n * e
        if self.kind == "batched_gemm":
            return (self.n * self.cols + self.cols * self.batch) * e, self.n * self.batch * e
        raise ValueError(f"unknown kind {self.kind!r}: one of {KINDS}")

    def flops_per_rep(self) -> int:
        if self.kind == "gemm":
            return 2 * self.n**3
        if self.kind == "gemv":
            return 2 * self.n * self.cols
        if self.kind == "batched_gemm":
            return 2 * self.n * self.cols * self.batch
        return 0


@wire.record
@dataclass(frozen=True)
class Measured:
    """What one workload did in its best window, and what the dashboards read meanwhile."""

    name: str
    kind: str
    device: str
    bytes_read: int
    bytes_written: int
    flops: int
    seconds: float  # CPU: the thread's CPU time in the window; GPU: wall time, synchronised
    repeats: int
    readings: dict = field(default_factory=dict)  # dashboard readings, 0-100 %


def _tensors(w: Workload, device: str):
    import torch

    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    e = w.element_bytes

    def make(*shape):
        # ones: a buffer's first touch is what costs on a CPU, and copies read no values
        return torch.ones(*shape, device=device, dtype=dtype)

    def rand(*shape):
        return torch.rand(*shape, device=device, dtype=dtype)

    if w.kind in ("copy", "small_copies"):
        src, dst = make(w.size_bytes // e), make(w.size_bytes // e)
        return lambda: dst.copy_(src)
    if w.kind == "gemm":
        a, b, c = rand(w.n, w.n), rand(w.n, w.n), make(w.n, w.n)
        return lambda: torch.matmul(a, b, out=c)
    if w.kind == "gemv":
        m, x, y = make(w.n, w.cols), make(w.cols), make(w.n)
        return lambda: torch.mv(m, x, out=y)
    if w.kind == "batched_gemm":
        m, x, y = rand(w.n, w.cols), rand(w.cols, w.batch), make(w.n, w.batch)
        return lambda: torch.matmul(m, x, out=y)
    if w.kind == "block_copies":
        per_block = w.size_bytes // e
        pool = make(w.pool_bytes // w.size_bytes, per_block)
        out = make(w.blocks, per_block)
        picks = torch.randperm(pool.shape[0])[: w.blocks].tolist()

        def step():
            for k, i in enumerate(picks):  # one copy call per block, as a naive swap does
                out[k].copy_(pool[i])

        return step
    raise ValueError(f"unknown kind {w.kind!r}: one of {KINDS}")


def _window(step, device: str, min_s: float) -> tuple[float, float, int]:
    """(seconds the workload ran, wall seconds, repetitions) of a loop of `step` that ran at
    least `min_s`. On the CPU the seconds are this thread's CPU time: on a shared machine the
    time spent waiting for the core is not the workload's. On a GPU they are wall time, the
    device synchronised."""
    import torch

    if device == "cpu":
        cpu0, wall0, reps = time.thread_time(), time.perf_counter(), 0
        while time.thread_time() - cpu0 < min_s:
            step()
            reps += 1
        return time.thread_time() - cpu0, time.perf_counter() - wall0, reps
    torch.cuda.synchronize()
    wall0, reps = time.perf_counter(), 0
    while True:
        for _ in range(4):
            step()
        reps += 4
        torch.cuda.synchronize()
        took = time.perf_counter() - wall0
        if took >= min_s:
            return took, took, reps


def measure(
    workloads: list[Workload], *, device: str = "cpu", min_s: float = 0.3, windows: int = 3
) -> list[Measured]:
    """Run the workloads in this process (one thread on the CPU), their windows in turn (so a
    busy moment of the machine falls on all of them alike), and keep each one's best window."""
    import torch

    if device == "cpu":
        torch.set_num_threads(1)
    steps = []
    for w in workloads:
        step = _tensors(w, device)
        step()  # warm-up: first touch of the buffers, kernel selection
        steps.append(step)
    sampler = _sampler(device)
    best: list[tuple | None] = [None] * len(workloads)
    try:
        for window in range(windows):
            for k, step in enumerate(steps):
                label = f"{k}-{window}"
                if sampler is not None:
                    sampler.mark(label)
                ran, wall, reps = _window(step, device, min_s)
                if sampler is not None:
                    sampler.mark("between")
                if best[k] is None or ran / reps < best[k][0] / best[k][2]:
                    best[k] = (ran, wall, reps, label)
        out = []
        for w, (ran, wall, reps, label) in zip(workloads, best, strict=True):
            read, written = w.bytes_per_rep()
            if device == "cpu":
                readings = {"cpu_util": min(100.0, 100.0 * ran / wall)}
            else:
                readings = _gpu_readings(sampler, label)
            flops = w.flops_per_rep() * reps
            out.append(
                Measured(
                    w.name, w.kind, device, read * reps, written * reps, flops, ran, reps, readings
                )
            )
        return out
    finally:
        if sampler is not None:
            sampler.stop()
        del steps
        if device != "cpu":
            torch.cuda.empty_cache()


def _sampler(device: str):
    if device == "cpu":
        return None
    from labsupport.telemetry import nvml

    return nvml.Sampler(index=0, interval_s=0.05).start()


def _gpu_readings(sampler, label: str) -> dict:
    """Median NVML readings over the window's samples (its first 0.3 s dropped)."""
    t = sampler.trace()
    part = t.select(t.phases == label)
    part = part.select(part["t_s"] >= part["t_s"][0] + 0.3) if len(part) > 8 else part
    return {
        "nvml_util_gpu": part.median("util_gpu"),
        "nvml_util_mem": part.median("util_mem"),
        "gpm_dram_bw_util": part.median("dram_bw_util"),
    }


def measure_in_child(
    workloads: list[Workload],
    *,
    device: str = "cpu",
    min_s: float = 0.3,
    windows: int = 3,
    timeout_s: float = 300.0,
) -> list[Measured]:
    """`measure` in a fresh interpreter (its own allocator, no CUDA context in the caller)."""
    from labsupport import isolate

    result = isolate.run_function(
        "labsupport.telemetry.bandwidth:measure",
        workloads,
        device=device,
        min_s=min_s,
        windows=windows,
        timeout_s=timeout_s,
    )
    if not result.ok:
        raise RuntimeError(f"the bandwidth workloads failed: {result.error}")
    return result.value
