"""Lab 277, GPU memory held after a crash: a model server's container, its workers, its init.

    >>> from labsupport.scenarios import gpu_memory_held_after_crash as scenario
    >>> v = scenario.variant(0)
    >>> v.modes, v.helper, v.worker_bytes // 2**20
    (('busy', 'eof', 'busy'), True, 96)

Modules: `card` (the GPU's memory, or a tmpfs standing in for it), `server`, `worker` and
`supervisor` (the processes of the container: a server that checks free memory at start
like vLLM and starts one worker process per rank, and the incident's entrypoint script that
restarts it), `incident` (the container crashed on purpose and observed from the node),
`trials` (the learner's fixes tried in a contained run), `plots`, `hints`. `variant(seed)`
says what a seed changes: how many workers, how each behaves when its parent dies (computes
on, or notices a closed pipe and exits), whether a helper process without device memory runs
beside them, how much memory each holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from labsupport import wire

MiB, GiB = 2**20, 2**30
CARD_BYTES = 512 * MiB  # the stand-in card
NEED_FRACTION = 0.9  # the server's gpu_memory_utilization
GPU_WORKER_BYTES = 2 * GiB  # what a worker holds on a real GPU (plus its CUDA context)
# (how each worker behaves when its parent dies, a helper beside them, MiB per worker)
INCIDENTS = (
    (("busy", "eof", "busy"), True, 96),
    (("eof", "busy"), False, 128),
    (("busy", "busy", "eof", "busy"), True, 64),
    (("busy", "eof", "eof"), False, 112),
    (("eof", "busy", "busy"), True, 80),
)


@wire.record
@dataclass(frozen=True)
class Variant:
    """One incident: the workers the server starts, what each does when the server dies."""

    seed: int
    modes: tuple  # per rank: "busy" (computes on) or "eof" (exits when the server's pipe closes)
    helper: bool  # a detokenizer process that holds no device memory
    worker_bytes: int  # device memory per worker on the stand-in card
    card_bytes: int = CARD_BYTES
    need_fraction: float = NEED_FRACTION
    gpu_worker_bytes: int = GPU_WORKER_BYTES

    @property
    def workers(self) -> int:
        return len(self.modes)


def variant(seed: int) -> Variant:
    """The incident of `seed` (0 is the solution notebook's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    modes, helper, mib = INCIDENTS[seed % len(INCIDENTS)]
    return Variant(seed, tuple(modes), helper, mib * MiB)


__all__ = ["Variant", "variant", "MiB", "GiB"]
