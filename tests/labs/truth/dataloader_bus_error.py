"""Lab 284's reference answers: the shared memory a loader needs, the cause, the bounds.

    >>> from tests.labs.truth import dataloader_bus_error as truth
    >>> cfg = {"sample_shape": [3, 256, 256], "dtype": "float32", "batch_size": 8,
    ...        "num_workers": 6, "prefetch_factor": 2, "pin_memory": True}
    >>> truth.needed_bytes(cfg) // 2**20            # (6 x 2 + 2) batches of 6 MiB
    84
    >>> truth.answer_key(0)["cause"], truth.answer_key(1)["cause"]
    ('loader', 'occupied')

Never part of the package: a candidate with `labsupport` installed cannot import the rule that
grades them. How the rule was found: a DataLoader keeps `num_workers x prefetch_factor` index
batches outstanding (dataloader.py, `_try_put_index` after each batch received); each
finished batch is one shared-memory segment per tensor until the training loop lets go of it;
the loop holds the batch it trains on and, while `next()` waits, the previous one: so up to
`num_workers x prefetch_factor + 2` batches, and measured peaks (`runs`) reach `+1` reliably
(the workers fill up during the first, slow step) and `+2` at times. Pinning
(`pin_memory=True`) copies each batch into page-locked memory in a thread of the main process
(`_pin_memory_loop`): that copy is not in /dev/shm, but it is memory of the container.
"""

from __future__ import annotations

import math
import random

from labsupport.scenarios import dataloader_bus_error as scenario
from labsupport.scenarios.dataloader_bus_error import pod as podlib
from labsupport.scenarios.dataloader_bus_error.loader import DTYPE_BYTES

MiB, GiB = 2**20, 2**30
PAGE = 4096
EXTRA_BATCHES = 2  # the batch in training and the one next() is receiving
LOW_EXTRA_BATCHES = 1  # measured peaks always reach +1: fewer is an undersized answer
MEASURED_SLACK = 0.99  # a sizing may not be below what a run measured (page rounding)
SIZE_MAX_FACTOR = 4.0  # sizeLimit at most 4x the need (or the need + 1 GiB)
MAX_IDLE = 0.35  # the training loop may wait for data at most this share of a run
CAUSES = ("loader", "occupied")


# ---- the diagnosis: shared memory a loader needs ---------------------------------------------
def batch_bytes(loader: dict) -> int:
    return math.prod(loader["sample_shape"]) * DTYPE_BYTES[loader["dtype"]] * loader["batch_size"]


def batches_in_shm(loader: dict, extra: int = EXTRA_BATCHES) -> int:
    """Batches that can be in shared memory at once (0 without workers: no shm at all)."""
    if loader["num_workers"] == 0:
        return 0
    return loader["num_workers"] * loader["prefetch_factor"] + extra


def needed_bytes(loader: dict) -> int:
    """The graded answer: the most /dev/shm this loader can use at once."""
    return batches_in_shm(loader) * batch_bytes(loader)


def accepted_range(loader: dict) -> tuple[int, int]:
    """(least, most) bytes accepted as the loader's need on written configurations."""
    low = batches_in_shm(loader, LOW_EXTRA_BATCHES) * batch_bytes(loader)
    return low, needed_bytes(loader) + batches_in_shm(loader) * PAGE


def near_misses(loader: dict) -> dict[str, int]:
    """What the usual wrong readings give, named for the hint."""
    b, nw, pf = batch_bytes(loader), loader["num_workers"], loader["prefetch_factor"] or 0
    sample = b // loader["batch_size"]
    elems = math.prod(loader["sample_shape"]) * loader["batch_size"]
    full = batches_in_shm(loader) or 1
    return {
        "the prefetched batches only (workers x prefetch), not the ones the loop holds": nw
        * pf
        * b,
        "one sample per slot, not a whole batch": full * sample,
        "elements, not bytes (the dtype's size left out)": full * elems,
        "float32 assumed whatever the dtype": full * elems * 4,
        "the workers only, not their prefetch": (nw + EXTRA_BATCHES) * b,
        "the prefetch factor only, not times the workers": (pf + EXTRA_BATCHES) * b,
        "one batch": b,
    }


def loader_cases(seed: int) -> dict[str, dict]:
    """Written loader configurations, built so that each near miss gives another number."""
    rng = random.Random(f"284-loaders-{seed}")
    out = {}
    shapes = [(3, 224, 224), (3, 256, 256), (3, 336, 336), (3, 448, 448), (1, 4096)]
    for label, dtype, workers, prefetch in (
        ("bfloat16 samples, 5 workers, prefetch 3", "bfloat16", 5, 3),
        ("uint8 images, 7 workers, prefetch 2", "uint8", 7, 2),
        ("float32, 3 workers, prefetch 4", "float32", 3, 4),
        ("float16, 2 workers, prefetch 1", "float16", 2, 1),
    ):
        out[label] = {
            "sample_shape": list(rng.choice(shapes)),
            "dtype": dtype,
            "batch_size": rng.choice([6, 10, 12, 24]),
            "num_workers": workers,
            "prefetch_factor": prefetch,
            "pin_memory": rng.random() < 0.5,
        }
    out["no workers: batches are made in the training process"] = {
        "sample_shape": [3, 256, 256], "dtype": "float32", "batch_size": 16,
        "num_workers": 0, "prefetch_factor": None, "pin_memory": True,
    }  # fmt: skip
    return out


# ---- the diagnosis: which cause, with this run's numbers ------------------------------------
def diagnosis(evidence: dict) -> dict:
    """The graded diagnosis of an incident's evidence: the cause and the two numbers."""
    need = needed_bytes(evidence["loader"])
    free = evidence["room_bytes"] - evidence["used_before_bytes"]
    return {"cause": "loader" if need > evidence["room_bytes"] else "occupied",
            "needed_bytes": need, "free_bytes": free}  # fmt: skip


def _timeline(rng, start: int, ceiling: int, step: int) -> list[list]:
    used, t, out = start, 0.0, []
    while used + step <= ceiling:
        out.append([round(t, 3), used])
        used += step
        t += rng.uniform(0.02, 0.06)
    out.append([round(t, 3), used])
    return out


def evidence_cases(seed: int) -> dict[str, dict]:
    """Written incidents, built so that the usual shortcuts give the wrong cause."""
    rng = random.Random(f"284-evidence-{seed}")
    room = 64 * MiB

    def loader(shape, dtype, bs, nw, pf):
        return {"sample_shape": list(shape), "dtype": dtype, "batch_size": bs,
                "num_workers": nw, "prefetch_factor": pf, "pin_memory": True}  # fmt: skip

    def case(ldr, listing, used_before, room_bytes=room):
        b = batch_bytes(ldr)
        steps = rng.randint(0, 12)
        return {
            "room_bytes": room_bytes,
            "used_before_bytes": used_before,
            "listing_before": listing,
            "loader": ldr,
            "timeline": _timeline(rng, used_before, room_bytes, b),
            "steps_done": steps,
            "error": "RuntimeError: unable to allocate shared memory(shm) for file "
            f"</torch_{rng.randint(100, 9999)}_{rng.randint(10**8, 10**9)}_0>: "
            "No space left on device (28)",
        }

    big = loader((3, 256, 256), "float32", rng.choice([8, 10]), rng.choice([6, 7]), 2)
    fits = loader((3, 320, 320), "uint8", 12, 4, 2)  # 3.5 MiB batches: 35 MiB with +2
    tiny = [["sem.mp-" + format(rng.getrandbits(24), "x"), 4096]]
    psm = [[f"psm_{rng.getrandbits(32):08x}", s * MiB] for s in (18, 12)]
    out = {
        "nothing else in /dev/shm, a loader that needs more than the room": case(big, [], 0),
        "a few KiB of semaphores left over, a loader that needs more than the room": case(
            big, tiny, 4096
        ),
        "segments of a killed process hold 30 MiB, a loader that fits an empty room": case(
            fits, psm, 30 * MiB
        ),
        "df says 34 MiB used, ls shows nothing (deleted but still mapped by a live "
        "process), a loader that fits": case(fits, [], 34 * MiB),
    }
    bigger_room = 256 * MiB  # a 256 MiB emptyDir that a loader fits, filled by leftovers
    wide = loader((3, 448, 448), "float32", 8, 6, 3)  # 18.4 MiB batches: 368 MiB needed
    out["a 256 MiB /dev/shm, a loader that needs more, 40 MiB left over"] = case(
        wide, [[f"psm_{rng.getrandbits(32):08x}", 40 * MiB]], 40 * MiB, bigger_room
    )
    return out


# ---- the fix: loader settings ----------------------------------------------------------------
def settings_problems(settings, loader: dict, free_bytes: int, min_workers: int) -> list[str]:
    """What is wrong with `settings` for this loader in `free_bytes` ([] if nothing)."""
    if not isinstance(settings, dict):
        return [
            f"return a dict with num_workers and prefetch_factor, not {type(settings).__name__}"
        ]
    problems = []
    w, p = settings.get("num_workers"), settings.get("prefetch_factor")
    if not (isinstance(w, int) and not isinstance(w, bool)) or w < 0:
        return [f"num_workers must be a non-negative int, got {w!r}"]
    if w > 0 and (not isinstance(p, int) or isinstance(p, bool) or p < 1):
        return [f"prefetch_factor must be an int >= 1 with workers, got {p!r}"]
    unknown = set(settings) - {"num_workers", "prefetch_factor", "sharing_strategy"}
    if unknown:
        problems.append(
            f"unknown settings {sorted(unknown)}: return num_workers and prefetch_factor"
        )
    if w < min_workers:
        problems.append(
            f"num_workers={w}: with fewer than {min_workers} workers the GPU step waits for "
            "data (a worker needs longer for a batch than a step takes)"
        )
    cfg = {**loader, "num_workers": w, "prefetch_factor": p if w else None}
    need = needed_bytes(cfg)
    if need > free_bytes:
        strategy = settings.get("sharing_strategy")
        extra = (
            f" (sharing_strategy {strategy!r} changes how segments are named and passed, "
            "not where they live: /dev/shm either way)"
            if strategy
            else ""
        )
        problems.append(
            f"num_workers={w}, prefetch_factor={p} can hold {need / MiB:.1f} MiB of batches "
            f"in /dev/shm at once, and {free_bytes / MiB:.1f} MiB are free{extra}"
        )
    return problems


def settings_inputs(seed: int) -> list[tuple[dict, int, int]]:
    """(loader, free bytes, min workers): written cases for the settings check."""
    rng = random.Random(f"284-settings-{seed}")
    out = []
    for shape, dtype, bs, free_mib, min_w in (
        ((3, 256, 256), "float32", 8, 64, 3),
        ((3, 384, 384), "uint8", 10, 34, 3),
        ((3, 224, 224), "bfloat16", 16, rng.choice([40, 48]), 2),
        ((3, 512, 512), "uint8", 8, rng.choice([96, 120]), 4),
    ):
        ldr = {"sample_shape": list(shape), "dtype": dtype, "batch_size": bs,
               "num_workers": 8, "prefetch_factor": 2, "pin_memory": True}  # fmt: skip
        out.append((ldr, free_mib * MiB, min_w))
    return out


# ---- the fix: the Pod -----------------------------------------------------------------------
def pinned_bytes(loader: dict) -> int:
    """Page-locked copies with pin_memory=True: the prefetched batches (at least)."""
    if not loader.get("pin_memory") or loader["num_workers"] == 0:
        return 0
    return loader["num_workers"] * loader["prefetch_factor"] * batch_bytes(loader)


def size_bounds(loader: dict) -> tuple[int, int]:
    need = needed_bytes(loader)
    return need, int(max(SIZE_MAX_FACTOR * need, need + GiB))


def memory_bounds(loader: dict, job_memory_bytes: int, room_bytes: int) -> tuple[int, int]:
    """(least, most) memory limit: the job, its /dev/shm (charged to it), its pinned copies."""
    least = job_memory_bytes + room_bytes + pinned_bytes(loader)
    return least, 2 * least + 2 * GiB


def pod_problems(obj: dict, loader: dict, job_memory_bytes: int) -> list[str]:
    """What keeps this Pod from running `loader` to the end ([] if nothing)."""
    try:
        shm = podlib.read(obj)
    except (podlib.PodError, KeyError, TypeError, IndexError) as exc:
        return [str(exc)]
    need = needed_bytes(loader)
    if shm.shm_volume is None:
        return [
            "nothing is mounted on /dev/shm: the container keeps the runtime's 64 MiB. Mount a "
            "volume there (volumeMounts mountPath /dev/shm)"
        ]
    if not shm.memory_backed:
        return [
            "the volume on /dev/shm is not memory-backed: shared memory on the node's disk "
            "(emptyDir without medium: Memory) is slow and survives nothing useful; use "
            "medium: Memory"
        ]
    if shm.size_limit_bytes is None:
        return [
            "the memory-backed volume has no sizeLimit: its tmpfs is as large as the pod's "
            "memory limit, so a runaway loader or a leak fills the container's memory"
        ]
    least, most = size_bounds(loader)
    problems = []
    if shm.size_limit_bytes < least:
        problems.append(
            f"sizeLimit {shm.size_limit_bytes / MiB:.0f} MiB: this loader can hold "
            f"{need / MiB:.1f} MiB of batches in /dev/shm at once"
        )
    elif shm.size_limit_bytes > most:
        problems.append(
            f"sizeLimit {shm.size_limit_bytes / MiB:.0f} MiB: size it from the loader's need "
            f"({need / MiB:.1f} MiB) with a margin, not from the node (at most "
            f"{most / MiB:.0f} MiB here)"
        )
    if shm.memory_limit_bytes is None:
        problems.append("the trainer has no memory limit: keep it, and raise it")
        return problems
    low, high = memory_bounds(loader, job_memory_bytes, shm.size_limit_bytes)
    if shm.memory_limit_bytes < low:
        pinned = pinned_bytes(loader)
        problems.append(
            f"memory limit {shm.memory_limit_bytes / GiB:.2f} GiB: the trainer uses "
            f"{job_memory_bytes / GiB:.2f} GiB without /dev/shm, every byte in a medium: Memory "
            f"volume is charged to it (up to {shm.size_limit_bytes / MiB:.0f} MiB)"
            + (
                f", and pinned copies of the prefetched batches add {pinned / MiB:.0f} MiB"
                if pinned
                else ""
            )
            + f": at least {low / GiB:.2f} GiB, or the pod is OOMKilled instead"
        )
    elif shm.memory_limit_bytes > high:
        problems.append(
            f"memory limit {shm.memory_limit_bytes / GiB:.1f} GiB: far above what the trainer, "
            f"its /dev/shm and its pinned copies need ({low / GiB:.2f} GiB): it reserves a "
            "node's memory for nothing"
        )
    return problems


def pod_inputs(seed: int) -> list[tuple[dict, int]]:
    """(loader, job memory bytes): written cases for the Pod check."""
    rng = random.Random(f"284-pods-{seed}")
    return [
        ({"sample_shape": [3, 256, 256], "dtype": "float32", "batch_size": 8, "num_workers": 6,
          "prefetch_factor": 2, "pin_memory": True}, int(5.5 * GiB)),
        ({"sample_shape": [3, 448, 448], "dtype": "float32", "batch_size": 16, "num_workers": 8,
          "prefetch_factor": 4, "pin_memory": True}, rng.choice([12, 20]) * GiB),
        ({"sample_shape": [3, 224, 224], "dtype": "uint8", "batch_size": 32, "num_workers": 4,
          "prefetch_factor": 2, "pin_memory": False}, int(rng.choice([3.5, 4.5]) * GiB)),
    ]  # fmt: skip


# ---- interviewer material -------------------------------------------------------------------
def answer_key(seed: int) -> dict:
    """The variant's graded ground truth."""
    v = scenario.variant(seed)
    ldr = v.loader.as_dict()
    free = v.room_bytes - sum(v.found_bytes)
    return {
        "loader": ldr,
        "room_mib": v.room_bytes / MiB,
        "left_by_a_killed_process_mib": [b / MiB for b in v.found_bytes],
        "cause": "loader" if needed_bytes(ldr) > v.room_bytes else "occupied",
        "needed_mib": needed_bytes(ldr) / MiB,
        "free_mib": free / MiB,
        "min_workers": v.min_workers,
        "size_limit_mib": [b / MiB for b in size_bounds(ldr)],
        "memory_limit_at_least_gib": round(
            memory_bounds(ldr, v.job_memory_bytes, size_bounds(ldr)[0])[0] / GiB, 3
        ),
        "written_loader_answers_mib": {
            k: needed_bytes(c) / MiB for k, c in loader_cases(seed).items()
        },
    }


def expected(seed: int) -> dict:
    """What the interviewer should see in variant `seed` (CPU, 2 cores, torch >= 2.10)."""
    v = scenario.variant(seed)
    ldr = v.loader.as_dict()
    key = answer_key(seed)
    b = batch_bytes(ldr)
    occupied = key["cause"] == "occupied"
    return {
        "the job": v.loader.describe(),
        "a batch": f"{b / MiB:.2f} MiB",
        "the incident run": (
            "dies within the first steps: 'unable to allocate shared memory(shm) ... No space "
            "left on device (28)' from a worker (torch >= 2.10; torch <= 2.9 and "
            "multiprocessing.shared_memory fault instead: 'killed by signal: Bus error')"
        ),
        "df / ls before the job": (
            f"{sum(v.found_bytes) / MiB:.0f} MiB used by psm_* segments of a killed process"
            if occupied
            else "empty"
        ),
        "the need": (
            f"({ldr['num_workers']} x {ldr['prefetch_factor']} + 2) x {b / MiB:.2f} MiB = "
            f"{key['needed_mib']:.1f} MiB (measured peak about one batch less) against a "
            f"{key['room_mib']:.0f} MiB room, {key['free_mib']:.0f} MiB free"
        ),
        "the cause": (
            "occupied: the loader fits an empty room; leftovers of a killed process hold the rest"
            if occupied
            else "loader: its in-flight batches alone need more than the room"
        ),
        "a passing settings fix": (
            f"num_workers >= {v.min_workers} (a batch read over a step) and the largest "
            f"prefetch_factor with (w x p + 2) x batch <= {key['free_mib']:.0f} MiB"
        ),
        "a passing Pod": (
            f"emptyDir medium: Memory on /dev/shm, sizeLimit {key['size_limit_mib'][0]:.0f}-"
            f"{key['size_limit_mib'][1]:.0f} MiB, memory limit >= job + sizeLimit + pinned "
            f"(>= {key['memory_limit_at_least_gib']:.2f} GiB with the smallest sizeLimit)"
        ),
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Reads df and ls of /dev/shm before and during the run, computes the loader's need "
            "as batch bytes x (workers x prefetch + the batches the loop holds), compares it "
            "with the room and with what was free, and names the cause from those numbers: "
            "the loader itself, or a room already occupied by a killed process's segments."
        ),
        "adequate": (
            "Finds that /dev/shm is full and sizes the need as batch x workers x prefetch, but "
            "forgets the batches in the loop or does not check what else holds the room."
        ),
        "weak": "Blames host RAM, the GPU or a torch bug; raises --shm-size by feel.",
    },
    "fix": {
        "strong": (
            "A memory-backed emptyDir on /dev/shm sized from the need with a margin, the memory "
            "limit raised by that size and the pinned copies; or, until the pod changes, a "
            "prefetch that fits the free room while keeping the workers the GPU needs."
        ),
        "adequate": (
            "A generous emptyDir without raising the memory limit, or a fix that fits by "
            "dropping workers and starves the GPU."
        ),
        "weak": (
            "num_workers=0, the file_system sharing strategy, or a sizeLimit of 30% of the "
            "node's memory copied from a blog."
        ),
    },
    "reasoning": {
        "strong": (
            "Explains why torch >= 2.10 raises 'unable to allocate shared memory' where older "
            "torch died of SIGBUS (posix_fallocate reserves, ftruncate does not), that a "
            "medium: Memory volume counts against the memory limit (OOMKilled, not a bus "
            "error, when it is too small), and that segments of killed processes outlive them "
            "while the pod's /dev/shm lives (emptyDir survives container restarts)."
        ),
        "adequate": "Knows the knobs (shm size, workers, prefetch) but not how they add up.",
        "weak": "Treats /dev/shm as disk, or as free memory that costs nothing.",
    },
}
