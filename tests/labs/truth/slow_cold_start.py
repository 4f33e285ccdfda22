"""Lab 293's reference answers: where a cold start's time and bytes go, the fix's bar, the rubric.

    >>> from tests.labs.truth import slow_cold_start as truth
    >>> truth.where_the_time_goes(truth.HAND_MADE)
    {'storage_s': 30.0, 'loader_s': 12.0, 'needless_bytes': 5000000000, 'bound': 'storage'}

Never part of the package: a candidate with `labsupport` installed cannot import the rule that
grades them. The checks of tests/labs/test_293_slow_cold_start.py compare the learner's
`where_the_time_goes` with the one here on a hand-made profile, on written profiles built so
that the usual wrong readings (the file's size or rchar for the bytes read, the cold time for
the storage's share, fp32 for what the server needs) give other answers, and on production's
start measured in this run; they grade `load_weights` by `MIN_SPEEDUP`, `MIN_READ_SHARE` and
the checkpoint's own hashes.
"""

from __future__ import annotations

import random

from labsupport.scenarios import slow_cold_start as scenario
from labsupport.scenarios.slow_cold_start.checkpoint import BYTES_PER_PARAM, SERVED

EXACT_S = 1e-6
MIN_SPEEDUP = 3.0  # production's coldest load over yours, same process, taking turns
MIN_READ_SHARE = 0.5  # of the served bytes, your cold loads must fetch from storage themselves
SUITE_MIN_SPEEDUP = 2.0


def where_the_time_goes(profile: dict) -> dict:
    """The page cache is the only difference between the cold and the warm load: the storage's
    share is their difference, the loader's own work is the warm load. Needless bytes: what
    the cold load fetched from storage (read_bytes) beyond what the server runs."""
    cold, warm = profile["cold"], profile["warm"]
    storage = round(cold["wall_s"] - warm["wall_s"], 6)
    loader = round(warm["wall_s"], 6)
    return {
        "storage_s": storage,
        "loader_s": loader,
        "needless_bytes": int(cold["read_bytes"] - profile["needed_bytes"]),
        "bound": "storage" if storage > loader else "loader",
    }


def near_misses(profile: dict) -> dict[str, dict]:
    """What the usual wrong readings of the same profile answer, named for the hint."""
    want = where_the_time_goes(profile)
    cold, warm, needed = profile["cold"], profile["warm"], profile["needed_bytes"]
    out = {
        "the cold load's whole time as the storage's share": {
            **want, "storage_s": round(cold["wall_s"], 6)
        },
        "CPU time instead of wall time": {
            **want,
            "storage_s": round(cold["cpu_s"] - warm["cpu_s"], 6),
            "loader_s": round(warm["cpu_s"], 6),
        },
        "the file's size instead of what was read from storage": {
            **want, "needless_bytes": int(profile["file_bytes"] - needed)
        },
        "rchar (read() calls, cache hits included) instead of read_bytes": {
            **want, "needless_bytes": int(cold["rchar"] - needed)
        },
        "the warm load's bytes": {**want, "needless_bytes": int(warm["read_bytes"] - needed)},
        "what the server needs counted in fp32, not bf16": {
            **want, "needless_bytes": int(cold["read_bytes"] - 2 * needed)
        },
    }  # fmt: skip
    return {k: v for k, v in out.items() if v != want}


def _load(wall_s: float, cpu_s: float, read_bytes: int, rchar: int, resident: float) -> dict:
    return {"wall_s": wall_s, "cpu_s": cpu_s, "read_bytes": read_bytes, "rchar": rchar,
            "resident_before": resident}  # fmt: skip


# A start written by hand, answer known: 6 GB read cold in 42 s, 12 s warm; the server runs
# 1 GB. Every check asks it first, so a stub fails at once.
HAND_MADE = {
    "file_bytes": 6_000_000_000,
    "needed_bytes": 1_000_000_000,
    "device": "cuda:0",
    "cold": _load(42.0, 14.5, 6_000_000_000, 6_000_020_000, 0.0),
    "warm": _load(12.0, 11.0, 0, 6_000_020_000, 1.0),
}


def _written(rng: random.Random, *, kind: str) -> dict:
    """A start's profile as `measure.profile` writes it, of one `kind`:
    "network": a big checkpoint on a slow volume (storage-bound, read() calls);
    "pickle": a node-local disk, unpickling and casting dominate;
    "mmap": a lazy mmap loader that reads only part of the file (rchar stays near 0);
    "fp32": a checkpoint of fp32 weights only, cast at load."""
    needed = rng.randint(2, 40) * 500_000_000
    factor = {"network": rng.choice((6, 8)), "pickle": 6, "mmap": 6, "fp32": 2}[kind]
    size = needed * factor + rng.randint(10_000, 900_000)
    warm = round(rng.uniform(4.0, 30.0), 3)
    if kind == "network":
        cold = round(warm + size / rng.uniform(0.2e9, 0.6e9), 3)
    else:
        cold = round(warm + size / rng.uniform(2e9, 6e9) * rng.uniform(0.3, 0.8), 3)
    read = size if kind != "mmap" else int(needed * 2 + rng.randint(1, 9) * 4096)
    rchar = size + rng.randint(1000, 50_000) if kind != "mmap" else rng.randint(100, 2_000_000)
    cpu_w = round(warm * rng.uniform(0.5, 0.95), 3)
    return {
        "file_bytes": size,
        "needed_bytes": needed,
        "device": rng.choice(("cuda:0", "cpu")),
        "cold": _load(cold, round(cpu_w + rng.uniform(0.5, 3.0), 3), read, rchar, 0.0),
        "warm": _load(warm, cpu_w, rng.choice((0, 0, 4096 * rng.randint(1, 30))), rchar, 1.0),
    }


def cases(seed: int) -> dict[str, dict]:
    """Written profiles for `seed`: label -> profile, one of each kind."""
    rng = random.Random(f"293-{seed}")
    return {
        "a training checkpoint on a network volume": _written(rng, kind="network"),
        "a training checkpoint on a node-local disk": _written(rng, kind="pickle"),
        "a lazy mmap loader on a training checkpoint": _written(rng, kind="mmap"),
        "an fp32 checkpoint cast to bf16 at load": _written(rng, kind="fp32"),
    }


def answer_of(got) -> dict | None:
    """The learner's answer as numbers; None when malformed."""
    keys = {"storage_s", "loader_s", "needless_bytes", "bound"}
    if not isinstance(got, dict) or not keys <= set(got):
        return None
    try:
        out = {
            "storage_s": float(got["storage_s"]),
            "loader_s": float(got["loader_s"]),
            "needless_bytes": int(got["needless_bytes"]),
            "bound": str(got["bound"]),
        }
    except (TypeError, ValueError):
        return None
    if isinstance(got["needless_bytes"], float) and not float(got["needless_bytes"]).is_integer():
        return None
    return out


def same(got: dict, want: dict) -> bool:
    return (
        abs(got["storage_s"] - want["storage_s"]) <= EXACT_S
        and abs(got["loader_s"] - want["loader_s"]) <= EXACT_S
        and abs(got["needless_bytes"] - want["needless_bytes"]) <= 1
        and got["bound"] == want["bound"]
    )


# ---- interviewer material ----------------------------------------------------------------------
def answer_key(seed: int) -> dict:
    """The variant's graded ground truth."""
    v = scenario.variant(seed)
    shape = v.shape("check")
    return {
        "extras": v.extras,
        "served_bytes": shape.params * SERVED,
        "train_pt_tensor_bytes": shape.params * BYTES_PER_PARAM[v.extras],
        "needless_share": round(1 - SERVED / BYTES_PER_PARAM[v.extras], 3),
        "written_profiles": {k: where_the_time_goes(p) for k, p in cases(seed).items()},
        "fix": f"cold load at least {MIN_SPEEDUP:g}x faster than production's, same tensors",
    }


_WHAT = {
    "adam": "fp32 weights + Adam's exp_avg and exp_avg_sq (12 bytes a parameter)",
    "ema": "fp32 weights + an fp32 EMA copy (8 bytes a parameter)",
    "adam_ema": "fp32 weights + Adam's two moments + an EMA copy (16 bytes a parameter)",
}


def expected(seed: int) -> dict:
    """What the interviewer should see in variant `seed` (2-core CPU, a virtio disk)."""
    v = scenario.variant(seed)
    factor = BYTES_PER_PARAM[v.extras] // SERVED
    return {
        "train.pt": f"{_WHAT[v.extras]}: {factor}x the {SERVED}-byte bf16 weights the server runs",
        "production's start": (
            "cold about 1-4 s, warm a little less: most of it is unpickling, copying and casting "
            "(the CPU), not the disk; read_bytes = the whole train.pt cold, 0 warm"
        ),
        "diagnosis": (
            f"needless_bytes = read_bytes - needed_bytes (about {factor - 1}/{factor} of the "
            "file); storage_s = cold - warm wall; loader_s = warm wall; bound 'loader' here"
        ),
        "loaders": (
            "safetensors cold 20-50x faster than production; torch.load(mmap=True, "
            "weights_only=True) reads only the model part but still casts fp32 -> bf16"
        ),
        "a passing fix": "load_file(model.safetensors, device=device): same hashes, >= 3x cold",
        "headline": "production's coldest load over the fix's, in one trial: 10-40x on CPU",
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Measures cold honestly (page cache dropped per file, residency checked) and warm, "
            "splits the start into the storage's share (cold - warm) and the loader's own work "
            "(warm), counts the bytes fetched from storage (read_bytes, not rchar or the file "
            "size) against the bf16 weights the server runs, and finds the optimizer state and "
            "fp32 copies in the training checkpoint."
        ),
        "adequate": (
            "Finds that the checkpoint is much bigger than the served weights, or that the "
            "loader is slow, but not both, or reads the bytes from the file size."
        ),
        "weak": "Blames the network or the image size without measuring the load.",
    },
    "fix": {
        "strong": (
            "Loads the bf16 safetensors export straight to the device (zero-copy mmap, no "
            "pickle): same tensors, a cold start many times faster; and says the export must "
            "be the serving artifact the publish step versions."
        ),
        "adequate": (
            "torch.load(mmap=True, weights_only=True) of the training checkpoint: skips the "
            "optimizer's bytes but still reads fp32 and casts."
        ),
        "weak": "Bakes the training checkpoint into the image, or caches it on the node.",
    },
    "reasoning": {
        "strong": (
            "Compares image, volume and image volume by bytes moved and where they land (a "
            "pulled image leaves its files in the page cache; a network volume is read cold), "
            "knows Kubernetes image volumes and streaming loaders (Run:ai Model Streamer, "
            "fastsafetensors), and that torch.load defaults to weights_only=True since 2.6 "
            "because pickle runs code."
        ),
        "adequate": "Knows safetensors is faster and safer, but not why in bytes and copies.",
        "weak": "Treats the cold start as a network problem only.",
    },
}
