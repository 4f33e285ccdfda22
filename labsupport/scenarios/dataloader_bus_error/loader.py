"""The job's input pipeline: a real `torch.utils.data.DataLoader` over image-sized samples.

    >>> from labsupport.scenarios.dataloader_bus_error.loader import LoaderConfig
    >>> cfg = LoaderConfig((3, 256, 256), "float32", batch_size=8, num_workers=4,
    ...                    prefetch_factor=3)
    >>> cfg.sample_bytes, cfg.batch_bytes // 2**20
    (786432, 6)

Each sample is a tensor of `sample_shape` (an image after decoding), read in `read_s` seconds
(a sleep stands in for fetching it from object storage, so it does not depend on how busy the
CPU is); the training loop spends `step_s` per batch (a sleep stands in for the GPU step), and
`warmup_s` on its first (compiling the model), while the workers fill their queue. The
loader's settings are the ones of the incident or of a fix. `iterate` runs it in this process
and reports what happened; the workers are the DataLoader's own (fork, as on Linux).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from labsupport import wire

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "uint8": 1}


@wire.record
@dataclass(frozen=True)
class LoaderConfig:
    """What the job passes to DataLoader, and what one sample is."""

    sample_shape: tuple
    dtype: str
    batch_size: int
    num_workers: int
    prefetch_factor: int | None = 2
    pin_memory: bool = False

    @property
    def sample_bytes(self) -> int:
        return math.prod(self.sample_shape) * DTYPE_BYTES[self.dtype]

    @property
    def batch_bytes(self) -> int:
        return self.batch_size * self.sample_bytes

    def with_settings(self, num_workers: int, prefetch_factor: int | None) -> LoaderConfig:
        return replace(self, num_workers=num_workers, prefetch_factor=prefetch_factor)

    def as_dict(self) -> dict:
        """What the learner's functions receive: plain values."""
        return {
            "sample_shape": list(self.sample_shape),
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "prefetch_factor": self.prefetch_factor,
            "pin_memory": self.pin_memory,
        }

    @classmethod
    def from_dict(cls, d: dict) -> LoaderConfig:
        return cls(
            tuple(int(x) for x in d["sample_shape"]),
            str(d["dtype"]),
            int(d["batch_size"]),
            int(d["num_workers"]),
            None if d.get("prefetch_factor") is None else int(d["prefetch_factor"]),
            bool(d.get("pin_memory", False)),
        )

    def describe(self) -> str:
        pf = "" if self.num_workers == 0 else f", prefetch_factor={self.prefetch_factor}"
        return (
            f"DataLoader(batch_size={self.batch_size}, num_workers={self.num_workers}{pf}, "
            f"pin_memory={self.pin_memory}); samples {self.dtype} {tuple(self.sample_shape)}"
        )


@wire.record
@dataclass(frozen=True)
class Pace:
    """How long reading a sample and one training step take (sleeps: I/O and GPU stand-ins)."""

    read_s: float = 0.005
    step_s: float = 0.02
    warmup_s: float = 0.5  # the first step (compiling the model): the workers fill up meanwhile


class Samples:
    """A map-style dataset of `n` samples; sample i is filled with i (cheap, checkable)."""

    def __init__(self, cfg: LoaderConfig, n: int, read_s: float):
        self.cfg, self.n, self.read_s = cfg, n, read_s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        import torch

        time.sleep(self.read_s)
        return torch.full(
            tuple(self.cfg.sample_shape), i % 100, dtype=getattr(torch, self.cfg.dtype)
        )


class CachedSamples(Samples):
    """Workers that keep each decoded sample in shared memory (`multiprocessing.shared_memory`,
    the way a sample cache shares decoded images between workers) and send only a handle of
    16 elements through the DataLoader. The cache's segments are sized with ftruncate and
    nothing is reserved: the first write to a page the tmpfs cannot back faults, as torch's
    own segments did up to torch 2.9."""

    def __getitem__(self, i: int):
        from multiprocessing import shared_memory

        sample = super().__getitem__(i)
        seg = shared_memory.SharedMemory(create=True, size=self.cfg.sample_bytes)
        seg.buf[:] = sample.numpy().tobytes()  # the fault, if any, happens here
        self.__dict__.setdefault("cache", []).append(seg)
        return sample.reshape(-1)[:16].clone()


@dataclass
class Outcome:
    """What iterating the loader did: steps done, time waited for data, the error if any."""

    steps_done: int
    wait_s: float
    elapsed_s: float
    error_type: str | None = None
    error: str | None = None


def make(cfg: LoaderConfig, steps: int, pace: Pace, timeout_s: float, cache: bool = False):
    """The DataLoader, exactly as the job builds it (pinning only where there is a GPU)."""
    import torch
    from torch.utils.data import DataLoader

    kwargs = {}
    if cfg.num_workers > 0:
        kwargs = {"prefetch_factor": cfg.prefetch_factor, "timeout": timeout_s}
    pin = cfg.pin_memory and torch.cuda.is_available()
    dataset = (CachedSamples if cache else Samples)(cfg, steps * cfg.batch_size, pace.read_s)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        pin_memory=pin,
        **kwargs,
    )


def iterate(cfg: LoaderConfig, steps: int, pace: Pace, timeout_s: float = 60.0,
            cache: bool = False) -> Outcome:  # fmt: skip
    """Train for `steps` batches; return an Outcome (the exception is caught and described).

    A worker killed by a signal is reported by torch's SIGCHLD handler, which raises in the main
    thread wherever it happens to be: inside the loop (caught there) or, when the parent first
    saw the death otherwise, while the failure is being described or the workers stopped. Such a
    late error is the same measurement and is reported the same way."""
    import warnings

    warnings.filterwarnings("ignore", message=".*worker processes in total.*")
    state: dict = {"start": time.perf_counter(), "done": 0, "waited": 0.0, "it": None}
    try:
        try:
            return _iterate(cfg, steps, pace, timeout_s, cache, state)
        finally:
            _stop_workers(state["it"])
    except RuntimeError as late:  # raised by torch's SIGCHLD handler after the loop's own try
        _stop_workers(state["it"])
        lines = [ln for ln in str(late).strip().splitlines() if ln.strip()]
        return Outcome(
            state["done"], state["waited"], time.perf_counter() - state["start"],
            type(late).__name__, _essence(lines),
        )  # fmt: skip


def _iterate(cfg, steps, pace, timeout_s, cache, state) -> Outcome:
    start = state["start"]
    try:
        state["it"] = it = iter(make(cfg, steps, pace, timeout_s, cache))
        while state["done"] < steps:
            t0 = time.perf_counter()
            batch = next(it)
            if state["done"] > 0:  # the first batch waits for the workers to start: not steady
                state["waited"] += time.perf_counter() - t0
            assert int(batch.reshape(-1)[0]) == (state["done"] * cfg.batch_size) % 100
            time.sleep(pace.warmup_s if state["done"] == 0 else pace.step_s)
            state["done"] += 1
        del batch
    except Exception as exc:  # the crash is the measurement: report it as data
        chain, seen = [], exc
        while seen is not None and len(chain) < 3:  # torch raises "exited unexpectedly"
            chain.insert(0, seen)  # from the signal it saw: show the signal first
            seen = seen.__cause__
        lines = [ln for e in chain for ln in str(e).strip().splitlines() if ln.strip()]
        if not any("killed by signal" in ln for ln in lines):
            lines += _worker_deaths(state["it"])
        return Outcome(
            state["done"], state["waited"], time.perf_counter() - start, type(exc).__name__,
            _essence(lines),
        )  # fmt: skip
    return Outcome(state["done"], state["waited"], time.perf_counter() - start)


def _stop_workers(it) -> None:
    """Stop the workers now, not when the garbage collector gets to them: a worker still
    finishing its prefetch would write into whatever /dev/shm is mounted next. Once stopped,
    torch no longer watches their pids, so no late error can follow."""
    shutdown = getattr(it, "_shutdown_workers", None)
    for _ in range(3):  # the SIGCHLD handler may interrupt the shutdown itself: finish it
        if shutdown is None:
            return
        try:
            shutdown()
            return
        except RuntimeError:
            continue


def _worker_deaths(it, wait_s: float = 0.5) -> list[str]:
    """'worker (pid N) was killed by signal: Bus error' for each worker a signal ended. The
    parent may first see a dead worker as a reset connection (file_descriptor sharing) rather
    than as torch's "killed by signal" error: the workers' own exit status says what happened."""
    import signal

    lines = []
    deadline = time.monotonic() + wait_s
    for w in getattr(it, "_workers", None) or []:
        w.join(timeout=max(0.0, deadline - time.monotonic()))
        if w.exitcode is not None and w.exitcode < 0:
            name = signal.strsignal(-w.exitcode) or f"signal {-w.exitcode}"
            lines.append(f"worker (pid {w.pid}) was killed by signal: {name}")
    return lines


def _essence(lines: list[str]) -> str:
    """The lines of a DataLoader error worth showing: the first and the worker's last."""
    if not lines:
        return ""
    keep = [lines[0]]
    if len(lines) > 1 and lines[-1] != lines[0]:
        keep.append(lines[-1].strip())
    return "\n".join(keep)[:600]
