"""Reference answers of lab 276 (OOM while monitoring shows free memory): grading only.

    >>> from tests.labs.truth import oom_despite_free_memory as truth
    >>> truth.answer_key(0)["cause"], truth.answer_key(0)["largest_free_block_mib"]
    ('allocator', 100.0)

Never part of the installed package: the functions computing what the learner must find (the
largest run of free blocks, reserved-but-unallocated memory, the limit that refused the
request, a deployment that fits) live here with the generated inputs that separate them from
their near misses. `answer_key(seed)` is the variant's graded ground truth, `expected(seed)`
what the interviewer should see, `RUBRIC` the bands.
"""

from __future__ import annotations

import random
import re

from labsupport.memory.config import MiB
from labsupport.scenarios import oom_despite_free_memory as scenario

CAUSES = ("allocator", "card")
A, F, P = "active_allocated", "inactive", "active_pending_free"

# ---- what the learner must compute ----------------------------------------------------------


def largest_free_block_bytes(snapshot: dict) -> int:
    """The longest run of neighbouring 'inactive' blocks inside one segment."""
    largest = 0
    for seg in snapshot.get("segments", []):
        run = 0
        for block in seg.get("blocks", []):
            run = run + block["size"] if block.get("state") == F else 0
            largest = max(largest, run)
    return largest


def reserved_bytes(snapshot: dict) -> int:
    return sum(seg["total_size"] for seg in snapshot.get("segments", []))


def reserved_unallocated_bytes(snapshot: dict) -> int:
    """Segments' bytes minus 'active_allocated' blocks' bytes (pending-free is unallocated)."""
    allocated = sum(
        b["size"] for seg in snapshot.get("segments", []) for b in seg["blocks"] if b["state"] == A
    )
    return reserved_bytes(snapshot) - allocated


def diagnosis(evidence: dict) -> dict:
    """The graded diagnosis of one run's evidence: the cause and the numbers that decide it."""
    snap = evidence["snapshot"]
    request = evidence["request_bytes"]
    budget_left = evidence["deployment"]["worker_budget_bytes"] - reserved_bytes(snap)
    card_free = evidence["card"]["free_bytes"]
    cause = "card" if card_free < request <= budget_left else "allocator"
    return {
        "cause": cause,
        "largest_free_block_mib": largest_free_block_bytes(snap) / MiB,
        "reserved_unallocated_mib": reserved_unallocated_bytes(snap) / MiB,
        "budget_left_mib": budget_left / MiB,
        "card_free_mib": card_free / MiB,
    }


# numbers read from the OOM message are printed to 2 decimals of GiB at worst (5.12 MiB)
TOLERANCE_MIB = {
    "largest_free_block_mib": 0.01,
    "reserved_unallocated_mib": 0.01,
    "budget_left_mib": 6.0,
    "card_free_mib": 6.0,
}


def server_bounds(deployment: dict) -> tuple[float, float]:
    """The server's gpu_memory_utilization that keeps its needs and leaves the worker its
    budget and CUDA context: (lowest, highest)."""
    total = deployment["card_total_bytes"]
    low = deployment["server_needs_bytes"] / total
    high = (total - deployment["worker_budget_bytes"] - deployment["worker_context_bytes"]) / total
    return low, high


def reference_plan(evidence: dict) -> dict:
    """A deployment that fixes the run's cause and changes nothing else."""
    dep = evidence["deployment"]
    if diagnosis(evidence)["cause"] == "allocator":
        return {
            "worker_env": {"PYTORCH_ALLOC_CONF": "expandable_segments:True"},
            "server_gpu_memory_utilization": dep["server_gpu_memory_utilization"],
        }
    low, high = server_bounds(dep)
    return {"worker_env": {}, "server_gpu_memory_utilization": int(high * 100) / 100}


_SIZE = r"([\d.]+) (bytes|KiB|MiB|GiB)"
_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def parse_oom_message(text: str) -> dict | None:
    """The numbers in a CUDA OOM message (to two decimals, as torch prints them)."""

    def grab(pattern: str) -> int | None:
        match = re.search(pattern.replace("SIZE", _SIZE), text)
        return None if match is None else round(float(match[1]) * _UNITS[match[2]])

    tried = grab(r"Tried to allocate SIZE")
    if tried is None:
        return None
    return {
        "tried_bytes": tried,
        "capacity_bytes": grab(r"total capacity of SIZE") or 0,
        "device_free_bytes": grab(r"of which SIZE is free") or 0,
        "this_process_bytes": grab(r"this process has SIZE memory in use"),
        "allowed_bytes": grab(r"SIZE allowed;"),
        "allocated_bytes": grab(r"Of the allocated memory SIZE is allocated") or 0,
        "reserved_unallocated_bytes": grab(r"and SIZE is reserved by PyTorch but unallocated") or 0,
    }


# ---- graded inputs ---------------------------------------------------------------------------


def segment(address: int, blocks: list[tuple[int, str]], *, expandable=False, kind="large"):
    """A segment as torch.cuda.memory._snapshot() writes it; blocks = [(bytes, state)]."""
    out, offset = [], 0
    for size, state in blocks:
        requested = size if state != A else size - (size // 7 // 512) * 512  # rounding slack
        out.append(
            {
                "address": address + offset,
                "size": size,
                "requested_size": requested if state != F else 0,
                "state": state,
                "frames": [],
            }
        )
        offset += size
    allocated = sum(b["size"] for b in out if b["state"] == A)
    active = sum(b["size"] for b in out if b["state"] != F)
    return {
        "device": 0,
        "address": address,
        "total_size": offset,
        "allocated_size": allocated,
        "active_size": active,
        "requested_size": sum(b["requested_size"] for b in out if b["state"] != F),
        "stream": 0,
        "segment_type": kind,
        "segment_pool_id": (0, 0),
        "is_expandable": expandable,
        "frames": [],
        "blocks": out,
    }


def synthetic_snapshots(seed: int) -> dict[str, dict]:
    """Snapshots built to separate the answer from its near misses (seeded sizes): neighbouring
    free blocks longer than any single one, a pending-free block between free ones, two
    segments whose addresses touch with free blocks at the seam, a small-pool segment, an
    expandable segment, allocated blocks whose requested size is below their size."""
    rng = random.Random(f"lab276-snapshots:{seed}")
    while True:
        m = [rng.randrange(12, 90) * 2 * MiB for _ in range(12)]
        pair = m[1] + m[2]  # two neighbouring free blocks: the answer of the first snapshot
        single, tail_free, pending_side = m[4], m[6], m[7]
        seam_a, seam_b = m[8], m[9]
        ok = (
            max(m[1], m[2]) < single < pair  # the largest single block is not the largest hole
            and single + m[5] + tail_free > pair  # counting pending as free goes wrong
            and max(tail_free, seam_a, seam_b) < single
            and seam_a + seam_b > pair  # joining two segments at the seam goes wrong
        )
        if ok:
            break
    base = 0x7F0000000000
    first = segment(
        base,
        [(m[0], A), (m[1], F), (m[2], F), (m[3], A), (single, F), (m[5], P), (tail_free, F)]
        + [(m[10], A), (seam_a, F)],
    )
    second = segment(base + first["total_size"], [(seam_b, F), (m[11], A), (pending_side, P)])
    small = segment(base + 0x100000000, [(512 * 1024, A), (1536 * 1024, F)], kind="small")
    shapes = {"neighbouring free blocks, a pending free, two touching segments": {
        "segments": [first, second, small]
    }}  # fmt: skip
    e = [rng.randrange(10, 60) * 2 * MiB for _ in range(6)]
    whole = max(e) + 20 * MiB  # a whole free segment beats every hole of the expandable one
    shapes["an expandable segment and a whole free segment"] = {
        "segments": [
            segment(
                base + 0x200000000,
                [(e[0], A), (e[1], F), (e[2], P), (e[3], F), (e[4], A)],
                expandable=True,
            ),  # fmt: skip
            segment(base + 0x300000000, [(whole, F)]),
            segment(base + 0x400000000, [(e[5], A)]),
        ]
    }
    return shapes


def counterpart(seed: int) -> scenario.Variant:
    """An incident of the other layout than variant(seed)'s (so one cause cannot fit both)."""
    mine = diagnosis(run_evidence(scenario.variant(seed), backend="simulator"))["cause"]
    layout = "b" if mine == "allocator" else "a"
    rng = random.Random(f"lab276-counterpart:{seed}")
    for _ in range(200):
        v = scenario._draw(10_000 + seed, rng, layout=layout)
        if scenario._sound(v):
            return v
    raise RuntimeError(f"no counterpart for seed {seed}")


def sibling(seed: int) -> scenario.Variant:
    """Another incident of the same layout as variant(seed)'s, with other sizes."""
    mine = diagnosis(run_evidence(scenario.variant(seed), backend="simulator"))["cause"]
    layout = "a" if mine == "allocator" else "b"
    rng = random.Random(f"lab276-sibling:{seed}")
    for _ in range(200):
        v = scenario._draw(20_000 + seed, rng, layout=layout)
        if scenario._sound(v):
            return v
    raise RuntimeError(f"no sibling for seed {seed}")


_RUNS: dict = {}


def run(v: scenario.Variant, plan: dict | None = None, *, backend="auto", fresh_process=None):
    """scenario.run, once per session for each (variant, plan, backend)."""
    key = (v, repr(sorted((plan or {}).items())), backend, fresh_process)
    if key not in _RUNS:
        _RUNS[key] = scenario.run(v, plan, backend=backend, fresh_process=fresh_process)
    return _RUNS[key]


def run_evidence(v: scenario.Variant, *, backend="auto") -> dict:
    return scenario.evidence(v, run(v, backend=backend))


# ---- interviewer material -----------------------------------------------------------------


def answer_key(seed: int) -> dict:
    """The variant's graded ground truth (simulator numbers; a GPU run grades its own)."""
    v = scenario.variant(seed)
    ev = run_evidence(v, backend="simulator")
    key = {k: (round(x, 2) if isinstance(x, float) else x) for k, x in diagnosis(ev).items()}
    key["request_mib"] = v.request_bytes / MiB
    key["fix"] = reference_plan(ev)
    low, high = server_bounds(ev["deployment"])
    key["server_utilization_range"] = (round(low, 4), round(high, 4))
    return key


def expected(seed: int) -> dict:
    """What the interviewer should see in this variant's run, and the answers."""
    v = scenario.variant(seed)
    ev = run_evidence(v, backend="simulator")
    key = answer_key(seed)
    plan = reference_plan(ev)
    before = run(v, backend="simulator")
    probe_before = scenario.run(v, probe=True, backend="simulator").largest_request_bytes or 0
    probe_after = scenario.run(v, plan, probe=True, backend="simulator").largest_request_bytes or 0
    cause_text = {
        "allocator": "the worker's budget refused a new segment while its reserved memory sat in "
        "holes smaller than the request (the caching allocator's fragmentation)",
        "card": "the worker's budget had room but the card did not: the LLM server's redeploy "
        f"(gpu_memory_utilization {v.server_before:.2f} -> {v.server_after:.3f}) took it",
    }[key["cause"]]
    return {
        "cause": key["cause"],
        "what happened": cause_text,
        "the OOM message": before.oom_message,
        "request MiB": key["request_mib"],
        "largest free block MiB": key["largest_free_block_mib"],
        "reserved but unallocated MiB": key["reserved_unallocated_mib"],
        "budget left MiB": key["budget_left_mib"],
        "card free MiB": key["card_free_mib"],
        "a fix that passes": plan,
        "server utilization that passes (low, high)": key["server_utilization_range"],
        "headline MiB (largest request that fits, before -> after)": (
            probe_before / MiB,
            probe_after / MiB,
        ),
    }


RUBRIC = {
    "diagnosis": {
        "strong": "Separates the four meanings of free (allocated, reserved, the card's free "
        "memory, other processes and the budget), reads the OOM message and the snapshot, and "
        "names the limit that refused the request with its numbers: budget left vs request and "
        "largest free block vs reserved-but-unallocated for the allocator; card free vs request "
        "with the budget still open for the card, and the process that took it.",
        "adequate": "Finds the right cause from the OOM message, but computes only some of the "
        "numbers or counts pending-free or non-neighbouring blocks as one hole.",
        "weak": "Follows torch's closing advice whatever the numbers say, or blames 'PyTorch's "
        "cache' without reading the snapshot; cannot say why 'free' on the dashboard did not help.",
    },
    "fix": {
        "strong": "Changes only what refused the request: expandable_segments:True in the "
        "worker's environment under PYTORCH_ALLOC_CONF (read back from the snapshot's "
        "allocator_settings), or a server gpu_memory_utilization that keeps the server's needs "
        "and leaves the worker its budget plus its CUDA context; proves it by a re-run.",
        "adequate": "Right fix for the cause, but untested, or sized by trial and error, or "
        "with a setting the cause does not need.",
        "weak": "empty_cache(), max_split_size_mb tuned to the trace, lifting the budget, "
        "PYTORCH_NO_CUDA_MEMORY_CACHING, or starving the server: hides the symptom or moves it.",
    },
    "reasoning": {
        "strong": "Explains why a tensor needs one contiguous block, why cudaFree returns whole "
        "segments only, how expandable segments unmap and remap pages, that a memory fraction "
        "is a cap and not a reservation, and that dashboards scraped every 60 s miss a "
        "redeploy in between; proposes alerts on reserved - allocated and on card free.",
        "adequate": "Explains one mechanism well, the other vaguely.",
        "weak": "Treats GPU memory as one pool; 'free on the dashboard' means free for the "
        "request.",
    },
}
