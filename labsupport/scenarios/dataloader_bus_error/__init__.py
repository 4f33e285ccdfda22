"""Lab 284, DataLoader workers die: the job's input pipeline under a container's /dev/shm.

    >>> from labsupport.scenarios import dataloader_bus_error as scenario
    >>> v = scenario.variant(0)
    >>> v.loader.num_workers, v.loader.prefetch_factor, v.room_bytes // 2**20
    (6, 2, 64)
    >>> v.min_workers
    3

Modules: `loader` (the job's DataLoader over image-sized samples, with sleeps standing in for
storage reads and the GPU step), `runs` (runs of it under a given /dev/shm in a fresh process
with its own mount namespace, measured), `pod` (the job's Pod and what the kubelet makes of
its /dev/shm and memory limit), `plots`, `hints`. `variant(seed)` says what a seed changes:
the samples (shape, dtype), the batch, the workers and prefetch, what else is in /dev/shm
when the job starts (segments a killed process left, or nothing), how fast storage and the
GPU step are (so how many workers the job needs), and the trainer's memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labsupport.scenarios.dataloader_bus_error.loader import LoaderConfig, Pace
from labsupport.scenarios.dataloader_bus_error.pod import incident_manifest
from labsupport.scenarios.dataloader_bus_error.runs import Arm

MiB, GiB = 2**20, 2**30
ROOM_BYTES = 64 * MiB  # Docker's and containerd's default /dev/shm
STEP_S = 0.025  # the GPU step stand-in
BATCH_READ_S = 0.055  # one worker reads a whole batch in this long: 3 workers keep up
# (sample shape, dtype, batch size, workers, prefetch factor, MiB left by a killed process)
INCIDENTS = (
    ((3, 256, 256), "float32", 8, 6, 2, ()),
    ((3, 384, 384), "uint8", 10, 4, 2, (14, 10, 6)),
    ((3, 224, 224), "float32", 12, 5, 2, ()),
    ((3, 320, 320), "uint8", 16, 3, 3, (20, 16)),
    ((3, 288, 288), "float32", 6, 6, 3, ()),
)
# a second loader measured beside the incident's when the diagnosis is graded
OTHERS = ((3, 3), (2, 4), (4, 1))
JOB_MEMORY_GIB = (5.5, 6.0, 9.0, 4.5, 7.5)  # the trainer's memory without /dev/shm


@dataclass(frozen=True)
class Variant:
    """One incident: the loader, the room it gets, who else is in it, the trainer's memory."""

    seed: int
    loader: LoaderConfig  # the job's DataLoader settings and samples
    room_bytes: int  # the size of the container's /dev/shm
    found_bytes: tuple  # segments a killed earlier container left in /dev/shm (sizes)
    pace: Pace
    job_memory_bytes: int  # the trainer's memory use without /dev/shm (its dashboard)
    memory_limit_bytes: int  # the incident manifest's limit
    other: LoaderConfig  # measured beside the incident's loader for the diagnosis
    steps: int = 24

    @property
    def min_workers(self) -> int:
        """Workers needed so the GPU step never waits: a batch read over a step."""
        return math.ceil(self.pace.read_s * self.loader.batch_size / self.pace.step_s - 1e-9)

    @property
    def manifest(self) -> str:
        return incident_manifest(self.memory_limit_bytes)

    def arm(self, name: str, loader: LoaderConfig | None = None, room_bytes: int | None = None,
            as_found: bool = True, steps: int | None = None) -> Arm:  # fmt: skip
        """A run of `loader` (default: the incident's) in this variant's /dev/shm."""
        return Arm(
            name,
            loader or self.loader,
            self.room_bytes if room_bytes is None else int(room_bytes),
            self.found_bytes if as_found else (),
            self.steps if steps is None else steps,
            self.pace,
        )


def variant(seed: int) -> Variant:
    """The incident of `seed` (0 is the solution notebook's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    i = seed % len(INCIDENTS)
    shape, dtype, batch, workers, prefetch, left = INCIDENTS[i]
    loader = LoaderConfig(shape, dtype, batch, workers, prefetch, pin_memory=True)
    other_w, other_p = OTHERS[seed % len(OTHERS)]
    job = int(JOB_MEMORY_GIB[i] * GiB)
    return Variant(
        seed=seed,
        loader=loader,
        room_bytes=ROOM_BYTES,
        found_bytes=tuple(m * MiB for m in left),
        pace=Pace(read_s=round(BATCH_READ_S / batch, 6), step_s=STEP_S),
        job_memory_bytes=job,
        memory_limit_bytes=int(math.ceil(job / GiB + 1.5) * GiB),
        other=loader.with_settings(other_w, other_p),
    )


__all__ = ["Variant", "variant", "LoaderConfig", "Pace", "Arm", "MiB", "GiB"]
