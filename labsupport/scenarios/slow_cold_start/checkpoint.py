"""Lab 293's checkpoint: the weights a model server needs, and the files it can load them from.

    >>> from labsupport.scenarios.slow_cold_start import checkpoint
    >>> shape = checkpoint.Shape(layers=2, hidden=64, ffn=128)
    >>> [name for name, _ in shape.tensors()][:3]
    ['layers.0.attn.q.weight', 'layers.0.attn.k.weight', 'layers.0.attn.v.weight']
    >>> shape.params, checkpoint.BYTES_PER_PARAM["adam"]
    (81920, 12)
    >>> with checkpoint.generated(shape, "adam", seed=1) as ckpt:
    ...     sorted(p.name for p in ckpt.files()), ckpt.needed_bytes
    (['model.safetensors', 'train.pt'], 163840)

The training job saves `train.pt` with `torch.save`: a pickle of {"model": the fp32 weights,
"optimizer": ..., "step": ...} (what else it holds depends on the training setup, `extras`).
Its publish step also writes `model.safetensors`: the weights as the server runs them, bf16.
The server needs the bf16 weights, `needed_bytes`. Files go to a disk-backed directory
(`/var/tmp/srelab-<pid>-ckpt-*`, or `SRELAB_CHECKPOINT_DIR`): a sandboxed process sees it
(read-only) and its page cache can be dropped (tmpfs has no other copy). Every file is
fsynced, so `labsupport.pagecache.drop` can make it cold. `generated()` removes the directory
when done; `make()` keeps it until `remove()` or the end of the process; `sweep()` removes
those whose process is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from labsupport import wire

TRAIN, EXPORT = "train.pt", "model.safetensors"
BYTES_PER_PARAM = {"adam": 12, "ema": 8, "adam_ema": 16}  # in train.pt: fp32 weights + extras
SERVED = 2  # bytes per parameter the server runs with (bf16)
_MADE: list[str] = []


@dataclass(frozen=True)
class Shape:
    """A decoder's weight matrices: per layer q, k, v, o (hidden x hidden) and an MLP."""

    layers: int = 8
    hidden: int = 512
    ffn: int = 1536

    def tensors(self) -> list[tuple[str, tuple[int, int]]]:
        h, f = self.hidden, self.ffn
        out = []
        for i in range(self.layers):
            for name, shape in (("attn.q", (h, h)), ("attn.k", (h, h)), ("attn.v", (h, h)),
                                ("attn.o", (h, h)), ("mlp.up", (f, h)), ("mlp.gate", (f, h)),
                                ("mlp.down", (h, f))):  # fmt: skip
                out.append((f"layers.{i}.{name}.weight", shape))
        return out

    @property
    def params(self) -> int:
        return sum(a * b for _, (a, b) in self.tensors())


@wire.record
@dataclass
class Checkpoint:
    """The files of one generated checkpoint and what is known about them."""

    directory: str
    extras: str  # what train.pt holds besides the fp32 weights: "adam", "ema", "adam_ema"
    params: int
    needed_bytes: int  # the bf16 weights the server runs
    train_bytes: int
    export_bytes: int
    parts: dict = field(default_factory=dict)  # train.pt's top-level keys -> tensor bytes
    hashes: dict = field(default_factory=dict)  # name -> sha256 of the served bf16 tensor

    @property
    def train_path(self) -> Path:
        return Path(self.directory) / TRAIN

    @property
    def export_path(self) -> Path:
        return Path(self.directory) / EXPORT

    def files(self) -> list[Path]:
        return [self.train_path, self.export_path]


def tensor_hash(t) -> str:
    """sha256 of a tensor's bytes (on the CPU, contiguous): equal only for equal tensors."""
    import torch

    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return hashlib.sha256(flat.view(torch.uint8).numpy().tobytes()).hexdigest()


def weights(shape: Shape, seed: int) -> dict:
    """The fp32 weights the training job ends with (deterministic in `seed`)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(s, generator=g) * 0.02 for name, s in shape.tensors()}


def _training_state(model: dict, extras: str, seed: int) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    state: dict = {"model": model, "step": 120_000}
    if extras in ("adam", "adam_ema"):
        state["optimizer"] = {
            "state": {
                i: {"step": torch.tensor(120_000.0), "exp_avg": torch.randn(t.shape, generator=g),
                    "exp_avg_sq": torch.rand(t.shape, generator=g)}
                for i, t in enumerate(model.values())
            },
            "param_groups": [{"lr": 3e-4, "betas": (0.9, 0.95), "params": list(range(len(model)))}],
        }  # fmt: skip
    if extras in ("ema", "adam_ema"):
        state["ema"] = {k: v + 0.001 * torch.randn(v.shape, generator=g) for k, v in model.items()}
    return state


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(directory, shape: Shape, extras: str, seed: int) -> Checkpoint:
    """Write train.pt and model.safetensors into `directory` (fsynced) and describe them."""
    import torch
    from safetensors.torch import save_file

    if extras not in BYTES_PER_PARAM:
        raise ValueError(f"extras must be one of {sorted(BYTES_PER_PARAM)}, got {extras!r}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    model = weights(shape, seed)
    state = _training_state(model, extras, seed)
    torch.save(state, d / TRAIN)
    served = {k: v.to(torch.bfloat16) for k, v in model.items()}
    save_file(served, d / EXPORT, metadata={"format": "pt", "source": "train.pt:model"})
    for p in (d / TRAIN, d / EXPORT):
        _fsync(p)
    parts = {k: _tensor_bytes(v) for k, v in state.items()}
    return Checkpoint(
        directory=str(d),
        extras=extras,
        params=shape.params,
        needed_bytes=shape.params * SERVED,
        train_bytes=(d / TRAIN).stat().st_size,
        export_bytes=(d / EXPORT).stat().st_size,
        parts={k: v for k, v in parts.items() if v},
        hashes={k: tensor_hash(v) for k, v in served.items()},
    )


def _tensor_bytes(value) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def base_dir() -> Path:
    """Where checkpoints go: SRELAB_CHECKPOINT_DIR, else /var/tmp (on disk, not tmpfs)."""
    return Path(os.environ.get("SRELAB_CHECKPOINT_DIR") or "/var/tmp")


def make(shape: Shape, extras: str, seed: int) -> Checkpoint:
    """A checkpoint kept until `remove()` or the end of this process."""
    sweep()
    d = tempfile.mkdtemp(prefix=f"srelab-{os.getpid()}-ckpt-", dir=base_dir())
    _MADE.append(d)
    try:
        return write(d, shape, extras, seed)
    except BaseException:
        remove(d)
        raise


def remove(ckpt) -> None:
    """Delete a checkpoint (a Checkpoint or its directory)."""
    d = str(getattr(ckpt, "directory", ckpt))
    shutil.rmtree(d, ignore_errors=True)
    with contextlib.suppress(ValueError):
        _MADE.remove(d)


@contextlib.contextmanager
def generated(shape: Shape, extras: str, seed: int):
    """A checkpoint that exists for the `with` block."""
    ckpt = make(shape, extras, seed)
    try:
        yield ckpt
    finally:
        remove(ckpt)


def sweep() -> None:
    """Remove checkpoints left by processes that are gone."""
    base = base_dir()
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            owner = entry.name.split("-")[1] if entry.name.startswith("srelab-") else ""
            if "-ckpt-" in entry.name and owner.isdigit() and not _alive(int(owner)):
                shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@atexit.register
def _remove_all() -> None:
    for d in list(_MADE):
        remove(d)
