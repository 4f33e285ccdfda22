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

No checkpoint outlives a killed server, even one SIGKILLed while it writes: the file is
written into an unnamed inode (`O_TMPFILE`; `memfd_create` where the filesystem lacks it), which
the kernel frees when the last descriptor closes. `ephemeral_checkpoint` never gives it a name;
`persistent_checkpoint` links it to its path only once it is complete. Only where neither is
available does a named file appear, in `$TMPDIR/srelab-checkpoints/`, and the next start removes
the ones whose process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

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


_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
           torch.int64: "I64", torch.uint8: "U8"}  # fmt: skip
_STALE_DIR = "srelab-checkpoints"


def _tensors(cfg: ModelConfig, seed: int, weights_mb: float) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's tensors, then padding chunks made one at a time (memory: one chunk)."""
    yield from sorted(TinyLM(cfg).init_weights(seed).state_dict().items())
    remaining, i = int(weights_mb * 2**20), 0
    while remaining > 0:
        n = min(PADDING_CHUNK_BYTES, remaining)
        # The content does not matter (nothing compresses it); a fill is fast to make.
        yield f"{_PADDING}{i:04d}", torch.full((n,), i % 251, dtype=torch.uint8)
        remaining -= n
        i += 1


def _write(f, cfg: ModelConfig, seed: int, weights_mb: float) -> int:
    """Stream a safetensors file to the binary file `f`; returns its size in bytes."""
    header: dict = {"__metadata__": {"srelab_model_config": json.dumps(asdict(cfg)),
                                     "seed": str(seed)}}  # fmt: skip
    offset = 0
    for name, t in _tensors(cfg, seed, 0):
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + n]}  # fmt: skip
        offset += n
    remaining, i = int(weights_mb * 2**20), 0
    while remaining > 0:
        n = min(PADDING_CHUNK_BYTES, remaining)
        header[f"{_PADDING}{i:04d}"] = {"dtype": "U8", "shape": [n],
                                        "data_offsets": [offset, offset + n]}  # fmt: skip
        offset, remaining, i = offset + n, remaining - n, i + 1
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format aligns the data on 8 bytes
    f.write(struct.pack("<Q", len(raw)) + raw)
    for _, t in _tensors(cfg, seed, weights_mb):
        f.write(t.contiguous().view(torch.uint8).numpy().tobytes())
    f.flush()
    return 8 + len(raw) + offset


def write_checkpoint(
    path: str | os.PathLike, cfg: ModelConfig, *, seed: int = 0, weights_mb: float = 0
) -> int:
    """Write a seeded TinyLM plus `weights_mb` MiB of padding to `path`; returns the file size."""
    with open(path, "wb") as f:
        return _write(f, cfg, seed, weights_mb)


@dataclass
class Checkpoint:
    path: str  # a path safetensors can open (for an ephemeral one: /proc/self/fd/N)
    generate_s: float
    file_bytes: int


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(folder: Path) -> None:
    """Remove the named leftovers (`<pid>-...`) of processes that no longer run."""
    for entry in folder.glob("*.partial-*") if folder.is_dir() else []:
        pid = entry.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                entry.unlink()


def _unnamed_file(folder: str | os.PathLike) -> tuple[int, str | None]:
    """(descriptor, None) of a file with no name in `folder`, or (fd, path) of a named fallback."""
    with contextlib.suppress(OSError, AttributeError):
        return os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600), None
    with contextlib.suppress(OSError, AttributeError):
        return os.memfd_create("srelab-checkpoint"), None
    stale = Path(tempfile.gettempdir()) / _STALE_DIR
    stale.mkdir(exist_ok=True)
    _remove_stale(stale)
    path = stale / f"model.safetensors.partial-{os.getpid()}"
    return os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR, 0o600), str(path)


def _write_fd(fd: int, cfg: ModelConfig, seed: int, weights_mb: float) -> int:
    with os.fdopen(os.dup(fd), "wb") as f:
        return _write(f, cfg, seed, weights_mb)


@contextlib.contextmanager
def ephemeral_checkpoint(
    cfg: ModelConfig, *, seed: int = 0, weights_mb: float = 0
) -> Iterator[Checkpoint]:
    """A checkpoint that exists only as an open file with no name (Linux)."""
    fd, named = _unnamed_file(tempfile.gettempdir())
    try:
        t0 = time.perf_counter()
        size = _write_fd(fd, cfg, seed, weights_mb)
        generate_s = time.perf_counter() - t0
        path = f"/proc/self/fd/{fd}"
        if named is not None:
            if os.path.exists(path):
                os.unlink(named)  # the descriptor keeps the data
                named = None
            else:
                path = named
        yield Checkpoint(path, generate_s, size)
    finally:
        os.close(fd)
        if named is not None:
            with contextlib.suppress(OSError):
                os.unlink(named)


@contextlib.contextmanager
def persistent_checkpoint(
    path: str | os.PathLike, cfg: ModelConfig, *, seed: int = 0, weights_mb: float = 0
) -> Iterator[Checkpoint]:
    """Use the checkpoint at `path`, writing it first if it does not exist (a local model cache).

    The file gets its name only once complete: a kill while writing leaves nothing at `path`.
    """
    path = Path(path)
    generate_s = 0.0
    if not path.exists():
        t0 = time.perf_counter()
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(path.parent)
        try:
            fd = os.open(path.parent, os.O_TMPFILE | os.O_RDWR, 0o600)
        except (OSError, AttributeError):
            fd = -1
        if fd >= 0:
            try:
                _write_fd(fd, cfg, seed, weights_mb)
                # a dir_fd makes os.link call linkat(AT_SYMLINK_FOLLOW): it names the inode
                parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    with contextlib.suppress(FileExistsError):  # another start won the race
                        os.link(f"/proc/self/fd/{fd}", path.name, dst_dir_fd=parent)
                finally:
                    os.close(parent)
            finally:
                os.close(fd)
        else:
            partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
            try:
                write_checkpoint(partial, cfg, seed=seed, weights_mb=weights_mb)
                os.replace(partial, path)
            finally:
                with contextlib.suppress(OSError):
                    partial.unlink()
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
