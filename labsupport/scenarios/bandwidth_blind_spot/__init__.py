"""Lab 296, bandwidth nobody sees: a capacity sign-off, the workloads behind it, their readings.

    >>> from labsupport.scenarios import bandwidth_blind_spot as scenario
    >>> v = scenario.variant(0)
    >>> [w.name for w in v.workloads("cpu")]
    ['copy-64MiB', 'copy-128MiB', 'small-copies', 'gemm', 'llm-serve step']
    >>> "DCGM_FI_DEV_MEM_COPY_UTIL" in scenario.page(v)
    True

Modules: `runs` (the workloads measured on this machine, the GPU when there is one, with the
readings dashboards show, and the H100 recording's table), `pool` (a pool's GPUs as
dcgm-exporter exported them, built from the H100 recording, for bandwidth alert rules run in
promtool), `plots`, `hints`. `variant(seed)` says what a seed changes: what llm-serve's hot step
is (so what bounds it: the memory bandwidth, the arithmetic, or the cost of each call), the
sizes of every workload, and which GPU of the pool saturates its memory, from when.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from labsupport.telemetry.bandwidth import ELEMENT_BYTES, Workload

__all__ = ["Variant", "variant", "page", "SERVICE", "service_workload"]

MiB = 2**20
SERVICE = "llm-serve step"
STEPS = ("weights", "batch", "blocks")  # what llm-serve's hot step does, by seed


@dataclass(frozen=True)
class Variant:
    """One sign-off: llm-serve's step, the reference workloads' sizes, the pool's night."""

    seed: int
    step: str  # "weights" (a matrix read once per step), "batch", "blocks"
    step_size: int  # rows of the matrix, or bytes of a block
    small_bytes: int
    gemm_n: int
    pool_seed: int

    def workloads(self, device: str) -> list[Workload]:
        """The probes (the measured peak), the reference workloads and llm-serve's step."""
        e = ELEMENT_BYTES["cpu" if device == "cpu" else "cuda"]
        if device == "cpu":
            refs = [
                Workload("copy-64MiB", "copy", size_bytes=64 * MiB, element_bytes=e),
                Workload("copy-128MiB", "copy", size_bytes=128 * MiB, element_bytes=e),
                Workload(
                    "small-copies", "small_copies", size_bytes=self.small_bytes, element_bytes=e
                ),
                Workload("gemm", "gemm", n=self.gemm_n, element_bytes=e),
            ]
        else:  # the H100 recording's sizes: 1 MiB copies, 4 GiB copies, an 8192 GEMM
            refs = [
                Workload("copy-1GiB", "copy", size_bytes=1024 * MiB, element_bytes=e),
                Workload("copy-4GiB", "copy", size_bytes=4096 * MiB, element_bytes=e),
                Workload("small-copies", "small_copies", size_bytes=MiB, element_bytes=e),
                Workload("gemm", "gemm", n=8192, element_bytes=e),
            ]
        return refs + [service_workload(self.step, self.step_size, device)]


def service_workload(step: str, size: int, device: str) -> Workload:
    """llm-serve's step of kind `step` at `size`, for the device."""
    gpu = device != "cpu"
    e = ELEMENT_BYTES["cuda" if gpu else "cpu"]
    if step == "weights":  # a decode step: the matrix is read once, a vector comes out
        return Workload(
            SERVICE,
            "gemv",
            n=size * (4 if gpu else 1),
            cols=8192 * (4 if gpu else 1),
            element_bytes=e,
        )
    if step == "batch":  # a prefill-like step: the same matrix against many columns at once
        return Workload(
            SERVICE,
            "batched_gemm",
            n=size * (4 if gpu else 1),
            cols=size * (4 if gpu else 1),
            batch=512 * (8 if gpu else 1),
            element_bytes=e,
        )
    if step == "blocks":  # a KV-cache swap-in: one copy call per block
        return Workload(
            SERVICE,
            "block_copies",
            size_bytes=size * (8 if gpu else 1),
            pool_bytes=(2048 if gpu else 64) * MiB,
            blocks=2048 if gpu else 1024,
            element_bytes=e,
        )
    raise ValueError(f"step must be one of {STEPS}, not {step!r}")


def variant(seed: int) -> Variant:
    """The sign-off of `seed` (0 is the solution notebook's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = random.Random(f"296-{seed}")
    step = STEPS[seed % len(STEPS)]
    size = {
        "weights": rng.choice((3072, 4096, 5120)),
        "batch": rng.choice((1536, 2048)),
        "blocks": rng.choice((2048, 4096)),
    }[step]
    return Variant(
        seed=seed,
        step=step,
        step_size=size,
        small_bytes=rng.choice((512, 1024, 2048)),
        gemm_n=rng.choice((640, 768, 896)),
        pool_seed=seed,
    )


def page(v: Variant) -> str:
    """The request on-call received, as text (the symptom and the claim, never the cause)."""
    rows = [
        ("what", "capacity sign-off for pool-b (not an outage)"),
        ("proposal", "co-locate embed-rerank (a second, memory-heavy model) on every card"),
        ("evidence attached", "DCGM_FI_DEV_MEM_COPY_UTIL averages 33 % on pool-b:"),
        ("", "'two thirds of the memory bandwidth is free'"),
        ("also on the dashboard", "DCGM_FI_DEV_GPU_UTIL 99 %"),
        ("alert", "MemoryBandwidthSaturated: DCGM_FI_DEV_MEM_COPY_UTIL > 90 for 5m"),
        ("", "has never fired on pool-b"),
        ("asked of you", f"how much of the cards' memory bandwidth does {SERVICE} use,"),
        ("", "and what should the bandwidth alert watch?"),
    ]
    table = "\n".join(f"  {k:<22} {val}" for k, val in rows)
    return f"TICKET - SRE review needed by Friday - pool-b capacity\n\n{table}"
