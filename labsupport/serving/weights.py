"""Checkpoints of the tiny model in safetensors, padded to a chosen size, loaded with timings.

    >>> from labsupport.serving.model import ModelConfig
    >>> from labsupport.serving.weights import ephemeral_checkpoint, load_model
    >>> with ephemeral_checkpoint(ModelConfig(), weights_mb=8) as ckpt:
    ...     model, extra, timings = load_model(ckpt.path, device="cpu")
    >>> sorted(timings.as_dict())[:3]
    ['device', 'file_bytes', 'generate_s']

The real model is a few MB; `weights_mb` adds padding tensors (stored, read and moved to the
device like weights, kept alive beside the model) so that loading takes the time a real
checkpoint of that size takes. Phases are timed separately, as an operator sizing a
startupProbe needs them: generate (writing the file, only when it did not exist), read (file
into process memory), to_device, and warm-up (filled in by the caller, who runs it).

`ephemeral_checkpoint` writes the file, opens it and unlinks it at once, so nothing is left on
disk even if the process is killed later; the open descriptor keeps it readable until closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from labsupport.serving.model import ModelConfig, TinyLM

PADDING_CHUNK_BYTES = 64 * 2**20
_PADDING = "padding."


@dataclass
class LoadTimings:
    generate_s: float = 0.0
    read_s: float = 0.0
    to_device_s: float = 0.0
    warmup_s: float = 0.0
    file_bytes: int = 0
    device: str = "cpu"

    @property
    def total_s(self) -> float:
        return self.generate_s + self.read_s + self.to_device_s + self.warmup_s

    def as_dict(self) -> dict:
        return {**asdict(self), "total_s": self.total_s}


def write_checkpoint(
    path: str | os.PathLike, cfg: ModelConfig, *, seed: int = 0, weights_mb: float = 0
) -> int:
    """Write a seeded TinyLM plus `weights_mb` MiB of padding to `path`; returns the file size."""
    tensors = {k: v.contiguous() for k, v in TinyLM(cfg).init_weights(seed).state_dict().items()}
    remaining = int(weights_mb * 2**20)
    i = 0
    while remaining > 0:
        n = min(PADDING_CHUNK_BYTES, remaining)
        # The content does not matter (nothing compresses it); a fill is fast to make.
        tensors[f"{_PADDING}{i:04d}"] = torch.full((n,), i % 251, dtype=torch.uint8)
        remaining -= n
        i += 1
    metadata = {"srelab_model_config": json.dumps(asdict(cfg)), "seed": str(seed)}
    save_file(tensors, os.fspath(path), metadata=metadata)
    return os.path.getsize(path)


@dataclass
class Checkpoint:
    path: str  # a path safetensors can open (for an ephemeral one: /proc/self/fd/N)
    generate_s: float
    file_bytes: int


@contextlib.contextmanager
def ephemeral_checkpoint(
    cfg: ModelConfig, *, seed: int = 0, weights_mb: float = 0
) -> Iterator[Checkpoint]:
    """A checkpoint that exists only as an open, already unlinked file (Linux)."""
    tmp = tempfile.mkdtemp(prefix=f"srelab-{os.getpid()}-weights-")
    fd = -1
    try:
        t0 = time.perf_counter()
        path = os.path.join(tmp, "model.safetensors")
        size = write_checkpoint(path, cfg, seed=seed, weights_mb=weights_mb)
        generate_s = time.perf_counter() - t0
        fd = os.open(path, os.O_RDONLY)
        proc_path = f"/proc/self/fd/{fd}"
        if os.path.exists(proc_path):
            os.unlink(path)  # the descriptor keeps the data; a kill now leaves no file behind
            shutil.rmtree(tmp, ignore_errors=True)
            path = proc_path
        yield Checkpoint(path, generate_s, size)
    finally:
        if fd >= 0:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def persistent_checkpoint(
    path: str | os.PathLike, cfg: ModelConfig, *, seed: int = 0, weights_mb: float = 0
) -> Iterator[Checkpoint]:
    """Use the checkpoint at `path`, writing it first if it does not exist (a local model cache)."""
    path = Path(path)
    generate_s = 0.0
    if not path.exists():
        t0 = time.perf_counter()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + f".partial-{os.getpid()}")
        write_checkpoint(partial, cfg, seed=seed, weights_mb=weights_mb)
        os.replace(partial, path)
        generate_s = time.perf_counter() - t0
    yield Checkpoint(os.fspath(path), generate_s, path.stat().st_size)


def read_metadata(path: str) -> dict[str, str]:
    with safe_open(path, framework="pt") as f:
        return f.metadata() or {}


def load_model(
    path: str, device: str | torch.device = "cpu"
) -> tuple[TinyLM, list[torch.Tensor], LoadTimings]:
    """Load a checkpoint onto `device`: (model, padding tensors to keep alive, timings).

    read = the file's bytes copied into this process (safetensors maps the file; a copy makes
    every page really read), to_device = the copy onto the device.
    """
    device = torch.device(device)
    timings = LoadTimings(file_bytes=os.path.getsize(path), device=str(device))
    t0 = time.perf_counter()
    cfg = ModelConfig(**json.loads(read_metadata(path)["srelab_model_config"]))
    tensors = {k: v.clone() for k, v in load_file(path, device="cpu").items()}
    timings.read_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    padding = [tensors.pop(k).to(device) for k in sorted(tensors) if k.startswith(_PADDING)]
    model = TinyLM(cfg)
    model.load_state_dict(tensors)
    model = model.to(device).eval()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timings.to_device_s = time.perf_counter() - t0
    return model, padding, timings
