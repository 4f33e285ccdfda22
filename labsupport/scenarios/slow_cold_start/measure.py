"""Lab 293's measurements: a weights load, cold and warm, timed with what the kernel counted.

    >>> from labsupport.scenarios.slow_cold_start import measure
    >>> measure.LOADERS[0]
    'production'
    >>> measure.resolve_device("cpu")
    'cpu'

Every load runs in a fresh process (`labsupport.isolate`), so no load finds another's tensors
or allocator state. A load is timed from the call until every weight is usable: on the GPU
after `torch.cuda.synchronize()`, on the CPU after one byte of every page was read (a lazy
mmap load pays for its reads there, as the first forward pass would). Cold means the page
cache held none of the directory's files: each was dropped with `posix_fadvise(DONTNEED)`
(`labsupport.pagecache`) right before, and `resident_before` says how much was still cached.
Warm means the same load again at once. Beside the wall time: CPU time, and the process's
`/proc/self/io` counters over the load (`read_bytes` fetched from storage, `rchar` returned
by read() calls).

- `profile(directory)`: production's load, cold then warm (what the diagnosis reads).
- `table(directory)`: the loaders of `LOADERS`, cold and warm.
- `trial(directory, load)`: production's load and `load` (yours: contained), cold, taking
  turns; the last result of yours described tensor by tensor (name, dtype, device, sha256).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path

from labsupport import pagecache, wire
from labsupport.scenarios.slow_cold_start.checkpoint import EXPORT, TRAIN, tensor_hash

LOADERS = (
    "production",  # torch.load(train.pt, weights_only=False)["model"], to bf16, to the device
    "torch.load mmap",  # torch.load(train.pt, mmap=True, weights_only=True), same
    "safetensors via CPU",  # safetensors load_file on the CPU, then .to(device)
    "safetensors to device",  # safetensors load_file(device=...)
)


@wire.record
@dataclass
class Load:
    """One timed load."""

    loader: str
    cold: bool
    wall_s: float
    cpu_s: float
    read_bytes: int  # fetched from storage during the load (/proc/self/io)
    rchar: int  # returned by read() calls during the load, cached or not
    resident_before: float  # share of the files' pages cached when it started


@wire.record
@dataclass
class Trial:
    """Production's load and yours, cold, taking turns; what yours returned."""

    device: str
    loads: list = field(default_factory=list)  # Load records, in order
    tensors: dict = field(default_factory=dict)  # name -> (dtype, device, shape, sha256)
    error: str = ""

    def coldest(self, loader: str) -> float:
        """The fastest cold load of `loader` (the least disturbed by a busy machine)."""
        times = [x.wall_s for x in self.loads if x.loader == loader and x.cold]
        return min(times) if times else float("nan")


def resolve_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _load(name: str, directory: Path, device: str) -> dict:
    import torch

    if name == "production":
        state = torch.load(directory / TRAIN, map_location="cpu", weights_only=False)
        return {k: v.to(torch.bfloat16).to(device) for k, v in state["model"].items()}
    if name == "torch.load mmap":
        state = torch.load(directory / TRAIN, map_location="cpu", mmap=True, weights_only=True)
        return {k: v.to(torch.bfloat16).to(device) for k, v in state["model"].items()}
    from safetensors.torch import load_file

    if name == "safetensors via CPU":
        return {k: v.to(device) for k, v in load_file(directory / EXPORT, device="cpu").items()}
    if name == "safetensors to device":
        return load_file(directory / EXPORT, device=device)
    raise ValueError(f"no loader {name!r}: one of {LOADERS}")


def _ready(tensors, device: str) -> None:
    """Make the result usable: wait for the GPU, or read one byte of every CPU page."""
    import torch

    if not isinstance(tensors, dict):
        raise TypeError(f"a loader must return a dict of tensors, got {type(tensors).__name__}")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    for t in tensors.values():
        if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.numel():
            flat = t.detach().reshape(-1)
            if flat.is_contiguous():
                int(flat.view(torch.uint8)[:: pagecache.PAGE].sum())


def timed(label: str, load, directory: Path, device: str, *, cold: bool):
    """Run `load(directory, device)` once, cold or warm; (its Load record, its tensors)."""
    files = [p for p in sorted(directory.iterdir()) if p.is_file()]
    if cold:
        pagecache.drop(*files)
    resident = sum(pagecache.resident_fraction(p) * p.stat().st_size for p in files)
    resident /= max(1, sum(p.stat().st_size for p in files))
    before = pagecache.io_counters()
    wall, cpu = time.perf_counter(), time.process_time()
    tensors = load(directory, device)
    _ready(tensors, device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = pagecache.io_counters()
    record = Load(
        loader=label,
        cold=cold,
        wall_s=round(wall, 5),
        cpu_s=round(cpu, 5),
        read_bytes=after["read_bytes"] - before["read_bytes"],
        rchar=after["rchar"] - before["rchar"],
        resident_before=round(resident, 4),
    )
    return record, tensors


def _warm_up(device: str) -> None:
    """Imports (the lazy ones too: one tiny file through each loader's path) and the device's
    context, so that no load - and no learner's line - pays for them."""
    import tempfile

    import torch
    from safetensors.torch import load_file, save_file

    if device.startswith("cuda"):
        torch.zeros(1, device=device)
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        save_file({"x": torch.zeros(2)}, f"{tmp}/w.safetensors")
        load_file(f"{tmp}/w.safetensors", device=device)
        torch.save({"x": torch.zeros(2)}, f"{tmp}/w.pt")
        torch.load(f"{tmp}/w.pt", map_location="cpu", mmap=True, weights_only=True)


def _as_dict(record: Load) -> dict:
    return {
        "wall_s": record.wall_s,
        "cpu_s": record.cpu_s,
        "read_bytes": record.read_bytes,
        "rchar": record.rchar,
        "resident_before": record.resident_before,
    }


def profile(directory, needed_bytes: int, device: str = "auto") -> dict:
    """Production's load of `directory`, cold then warm (a run_function target)."""
    directory, device = Path(directory), resolve_device(device)
    _warm_up(device)
    cold, tensors = timed("production", lambda d, dev: _load("production", d, dev), directory,
                          device, cold=True)  # fmt: skip
    del tensors
    warm, tensors = timed("production", lambda d, dev: _load("production", d, dev), directory,
                          device, cold=False)  # fmt: skip
    return {
        "file_bytes": (directory / TRAIN).stat().st_size,
        "needed_bytes": int(needed_bytes),
        "device": device,
        "cold": _as_dict(cold),
        "warm": _as_dict(warm),
    }


def table(directory, device: str = "auto", loaders=LOADERS, *, progress=None) -> list[Load]:
    """Each loader of `loaders`, cold then warm (a run_function target)."""
    directory, device = Path(directory), resolve_device(device)
    _warm_up(device)
    out = []
    for i, name in enumerate(loaders):
        for cold in (True, False):
            record, tensors = timed(name, lambda d, dev, n=name: _load(n, d, dev), directory,
                                    device, cold=cold)  # fmt: skip
            del tensors
            gc.collect()
            out.append(record)
        if progress:
            from labsupport import progress as bars

            bars.report(i + 1, len(loaders))
    return out


def trial(directory, load, device: str = "auto", reps: int = 2) -> Trial:
    """Production's load and `load` (a ref or a function), cold, taking turns (a
    run_function target: given learner code it runs contained)."""
    directory, device = Path(directory), resolve_device(device)
    fn = load.load() if hasattr(load, "load") else load
    _warm_up(device)
    result = Trial(device=device)
    for rep in range(reps):
        order = ("production", "yours") if rep % 2 == 0 else ("yours", "production")
        for arm in order:
            if arm == "production":
                record, tensors = timed(arm, lambda d, dev: _load("production", d, dev),
                                        directory, device, cold=True)  # fmt: skip
            else:
                record, tensors = timed(arm, fn, directory, device, cold=True)
                result.tensors = _describe(tensors)
            result.loads.append(record)
            del tensors  # nothing may keep the files mapped: mapped pages cannot be dropped
            gc.collect()
    return result


def _describe(tensors) -> dict:
    """name -> (dtype, device, shape, sha256) of what a loader returned."""
    import torch

    out = {}
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor):
            out[str(name)] = (str(t.dtype), str(t.device), tuple(t.shape), tensor_hash(t))
        else:
            out[str(name)] = (type(t).__name__, "", (), "")
    return out
