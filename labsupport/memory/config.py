"""Caching-allocator settings, parsed from the same variables and syntax PyTorch reads.

    >>> from labsupport.memory.config import AllocatorConfig, format_size
    >>> cfg = AllocatorConfig.from_env({"PYTORCH_ALLOC_CONF": "expandable_segments:True"})
    >>> cfg.expandable_segments, cfg.source
    (True, 'PYTORCH_ALLOC_CONF')
    >>> format_size(500 * 1024 * 1024)
    '500.00 MiB'

Rules mirrored from PyTorch (c10/core/AllocatorConfig.cpp, c10/cuda/CUDAAllocatorConfig.h):
- `PYTORCH_ALLOC_CONF` is read first; `PYTORCH_CUDA_ALLOC_CONF` is its alias, read only when the
  new name is unset. Torch 2.8 to 2.11 warned "PYTORCH_CUDA_ALLOC_CONF is deprecated, use
  PYTORCH_ALLOC_CONF instead" (AllocatorConfig.cpp); torch 2.12 dropped the warning and keeps the
  old name as an alias (no such text in torch 2.13's libc10.so), so the simulator, which models
  torch 2.13 (MODELLED_TORCH), warns only when asked for one of those releases.
- Syntax `key:value,key:value`; spaces ignored; `roundup_power2_divisions` also takes `[a:b,>:c]`.
- `max_split_size_mb` must be >= 20 (kLargeBuffer / 1 MiB);
  `garbage_collection_threshold` must lie in (0, 1);
  `per_process_memory_fraction` (torch 2.13) must lie in [0, 1]: the same cap as
  torch.cuda.set_per_process_memory_fraction, set from the environment.
- Unset `max_split_size` is SIZE_MAX, which the snapshot reports as -1 (an int64 cast).
Used in: lab 276.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

MiB = 1 << 20
SIZE_MAX = (1 << 64) - 1
kLargeBuffer = (
    20 * MiB
)  # CUDACachingAllocator.cpp: "large" allocations may be packed in 20 MiB blocks
ALLOC_ENV_NAMES = ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF")
_DEPRECATED_WARNING = "PYTORCH_CUDA_ALLOC_CONF is deprecated, use PYTORCH_ALLOC_CONF instead"
MODELLED_TORCH = "2.13"  # the release whose rules and messages the simulator follows
_INTERVALS = 16  # roundup_power2_divisions buckets: 1 MiB .. 64 GiB, one per power of two
_BOOL_KEYS = {
    "expandable_segments": "expandable_segments",
    "release_lock_on_cudamalloc": "release_lock_on_cudamalloc",
    "pinned_use_cuda_host_register": "pinned_use_cuda_host_register",
    "pinned_use_background_threads": "pinned_use_background_threads",
}


def format_size(size_bytes: int) -> str:
    """Format like c10's format_size, which writes every number in the OOM message."""
    if size_bytes <= 1024:
        return f"{size_bytes} bytes"
    if size_bytes <= 1048576:
        return f"{size_bytes / 1024:.2f} KiB"
    if size_bytes <= 1073741824:
        return f"{size_bytes / 1048576:.2f} MiB"
    return f"{size_bytes / 1073741824:.2f} GiB"


def _lex(text: str) -> list[str]:
    tokens: list[str] = []
    buf = ""
    for ch in text:
        if ch in ",:[]":
            if buf:
                tokens.append(buf)
                buf = ""
            tokens.append(ch)
        elif ch != " ":
            buf += ch
    if buf:
        tokens.append(buf)
    return tokens


def _expect(tokens: list[str], i: int, ch: str) -> None:
    if i >= len(tokens) or tokens[i] != ch:
        raise ValueError(f"Error parsing CachingAllocator settings, expected {ch!r} in {tokens}")


def _value(tokens: list[str], i: int, key: str) -> str:
    if i >= len(tokens):
        raise ValueError(f"Error, expecting {key} value")
    return tokens[i]


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class AllocatorConfig:
    """The settings that change the native caching allocator's decisions."""

    max_split_size_bytes: int = SIZE_MAX
    max_non_split_rounding_bytes: int = kLargeBuffer
    garbage_collection_threshold: float = 0.0
    expandable_segments: bool = False
    roundup_power2_divisions: tuple[int, ...] = (0,) * _INTERVALS
    release_lock_on_cudamalloc: bool = False
    pinned_use_cuda_host_register: bool = False
    pinned_use_background_threads: bool = False
    pinned_num_register_threads: int = 1
    backend: str = "native"
    per_process_memory_fraction: float | None = None  # None: not set from the environment
    raw: str = ""
    source: str = ""  # which variable the settings came from ("" = none set)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, text: str, *, source: str = "") -> AllocatorConfig:
        """Parse a settings string; raises ValueError with torch's wording on bad input."""
        values: dict = {"raw": text, "source": source}
        divisions = [0] * _INTERVALS
        tokens = _lex(text)
        i = 0
        while i < len(tokens):
            key = tokens[i]
            _expect(tokens, i + 1, ":")
            i += 2
            if key == "max_split_size_mb" or key == "max_non_split_rounding_mb":
                mb = int(_value(tokens, i, key))
                if mb < kLargeBuffer // MiB:
                    raise ValueError(f"CachingAllocator option {key} too small, must be >= 20")
                name = (
                    "max_split_size_bytes"
                    if key == "max_split_size_mb"
                    else ("max_non_split_rounding_bytes")
                )
                values[name] = min(mb * MiB, SIZE_MAX)
            elif key == "garbage_collection_threshold":
                threshold = float(_value(tokens, i, key))
                if not 0.0 < threshold < 1.0:
                    raise ValueError("garbage_collect_threshold is invalid, set it in (0.0, 1.0)")
                values["garbage_collection_threshold"] = threshold
            elif key == "per_process_memory_fraction":
                fraction = float(_value(tokens, i, key))
                if not 0.0 <= fraction <= 1.0:
                    raise ValueError("per_process_memory_fraction is invalid, set it in [0.0, 1.0]")
                values["per_process_memory_fraction"] = fraction
            elif key == "roundup_power2_divisions":
                i = _parse_divisions(tokens, i, divisions)
            elif key == "backend":
                backend = _value(tokens, i, key)
                if backend not in ("native", "cudaMallocAsync"):
                    raise ValueError(
                        "Unknown allocator backend, options are native and cudaMallocAsync"
                    )
                values["backend"] = backend
            elif key in _BOOL_KEYS or key == "release_lock_on_hipmalloc":
                flag = _value(tokens, i, key)
                if flag not in ("True", "False"):
                    raise ValueError(f"Expected a single True/False argument for {key}")
                values[_BOOL_KEYS.get(key, "release_lock_on_cudamalloc")] = flag == "True"
            elif key == "pinned_num_register_threads":
                threads = int(_value(tokens, i, key))
                if not _is_pow2(threads):
                    raise ValueError("Number of register threads has to be power of 2")
                values["pinned_num_register_threads"] = threads
            else:
                raise ValueError(f"Unrecognized CachingAllocator option: {key}")
            i += 1
            if i < len(tokens):
                _expect(tokens, i, ",")
                i += 1
        values["roundup_power2_divisions"] = tuple(divisions)
        return cls(**values)

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, torch_version: str = "") -> AllocatorConfig:
        """Settings as a fresh torch process would read them from environment `env`.

        `torch_version="2.9.1"` reproduces pytorch#183387: that release ignored
        `expandable_segments` given through the new name PYTORCH_ALLOC_CONF (its reporter
        verified 2.11.0 honours it: karpathy/autoresearch#588). `torch_version` of 2.8-2.11
        adds the deprecation warning those releases printed for the old name.
        """
        if "PYTORCH_ALLOC_CONF" in env:
            cfg = cls.parse(env["PYTORCH_ALLOC_CONF"], source="PYTORCH_ALLOC_CONF")
            if torch_version.startswith("2.9.") and "PYTORCH_CUDA_ALLOC_CONF" not in env:
                cfg = cls(**{**cfg.__dict__, "expandable_segments": False})
            return cfg
        if "PYTORCH_CUDA_ALLOC_CONF" in env:
            cfg = cls.parse(env["PYTORCH_CUDA_ALLOC_CONF"], source="PYTORCH_CUDA_ALLOC_CONF")
            if _warns_for_old_name(torch_version or MODELLED_TORCH):
                cfg = cls(**{**cfg.__dict__, "warnings": (_DEPRECATED_WARNING,)})
            return cfg
        return cls()

    def divisions_for(self, size_bytes: int) -> int:
        """roundup_power2_divisions bucket for a request size (AllocatorConfig.cpp)."""
        log_size = size_bytes.bit_length() - 1
        index = min(max(0, log_size - 20), _INTERVALS - 1)  # 2**20 = 1 MiB, first interval
        return self.roundup_power2_divisions[index]

    def settings_dict(self) -> dict:
        """The snapshot's 'allocator_settings' (torch/csrc/cuda/memory_snapshot.cpp)."""
        max_split = -1 if self.max_split_size_bytes == SIZE_MAX else self.max_split_size_bytes
        return {
            "PYTORCH_CUDA_ALLOC_CONF": self.raw,
            "max_split_size": max_split,
            "garbage_collection_threshold": self.garbage_collection_threshold,
            "expandable_segments": self.expandable_segments,
            "pinned_num_register_threads": self.pinned_num_register_threads,
            "release_lock_on_cudamalloc": self.release_lock_on_cudamalloc,
            "pinned_use_cuda_host_register": self.pinned_use_cuda_host_register,
            "graph_capture_record_stream_reuse": False,
            "roundup_power2_divisions": {
                str(1 << k): v for k, v in enumerate(self.roundup_power2_divisions)
            },
        }


def _warns_for_old_name(torch_version: str) -> bool:
    """Torch 2.8 to 2.11 warned when PYTORCH_CUDA_ALLOC_CONF was used (2.12 dropped it)."""
    try:
        major, minor = (int(x) for x in torch_version.split("+")[0].split(".")[:2])
    except ValueError:
        return False
    return (2, 8) <= (major, minor) < (2, 12)


def _parse_divisions(tokens: list[str], i: int, divisions: list[int]) -> int:
    """roundup_power2_divisions:N or :[256:4,512:2,>:1]; returns the index of the last token."""
    if _value(tokens, i, "roundup_power2_divisions") != "[":
        n = int(tokens[i])
        if not _is_pow2(n):
            raise ValueError("For roundups, the divisons has to be power of 2")
        divisions[:] = [n] * _INTERVALS
        return i
    first, last_index = True, 0
    i += 1
    while i < len(tokens) and tokens[i] != "]":
        interval = tokens[i]
        _expect(tokens, i + 1, ":")
        n = int(_value(tokens, i + 2, "roundup_power2_divisions"))
        i += 2
        if n != 0 and not _is_pow2(n):
            raise ValueError("For roundups, the divisons has to be power of 2 or 0")
        if interval == ">":
            divisions[last_index:] = [n] * (_INTERVALS - last_index)
        else:
            mib = int(interval)
            if not _is_pow2(mib):
                raise ValueError("For roundups, the intervals have to be power of 2")
            index = min(int(math.log2(mib)), _INTERVALS - 1)
            if first:
                divisions[:index] = [n] * index
                first = False
            divisions[index] = n
            last_index = index
        i += 1
        if i < len(tokens) and tokens[i] == ",":
            i += 1
    return i
