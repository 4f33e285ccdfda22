"""Lab 296's reference answers: achieved bandwidth, what bounds a step, the gauge, the rubric.

    >>> from tests.labs.truth import bandwidth_blind_spot as truth
    >>> truth.achieved_gbps(truth.HAND_MADE)
    2.0
    >>> truth.diagnose(truth.WRITTEN["a matrix read once per step"])["bound"]
    'memory bandwidth'

Never part of the package. The checks of tests/labs/test_296_bandwidth_blind_spot.py compare
`achieved_gbps` with `achieved_gbps` on written records built so that the usual slips (bytes
read only, GiB, one repetition) give other numbers and on this run's measured workloads, and
`diagnose` with `diagnose` on written evidence and on evidence measured in the grading run for
llm-serve's step of every kind; they read `bandwidth_alert_rules` for the gauge it watches and
run it in promtool over pools built from the H100 recording (`fix_pools`).
"""

from __future__ import annotations

import re

import yaml

from labsupport.scenarios import bandwidth_blind_spot as scenario
from labsupport.scenarios.bandwidth_blind_spot import pool

SERVICE = scenario.SERVICE
BANDWIDTH_BOUND = 0.5  # share of the measured copy peak at which the memory is the limit
COMPUTE_BOUND = 0.5  # share of the GEMM's FLOP/s at which the arithmetic is the limit
REL_TOLERANCE = 0.01
# The DCGM field that is a bandwidth: on Hopper DCGM reads it from GPM's DRAM_BW_UTIL
# ("percentage of DRAM bw used vs theoretical maximum"); the H100's 4 GiB copies read 0.90 of it
# while moving 3017 of 3352 GB/s. The utilisations are shares of time, not of bandwidth.
GAUGE = "DCGM_FI_PROF_DRAM_ACTIVE"
DUTY_CYCLES = ("DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_GPU_UTIL")


def achieved_gbps(run: dict) -> float:
    """Bytes read plus bytes written over the seconds they took, decimal GB/s."""
    return (run["bytes_read"] + run["bytes_written"]) / run["seconds"] / 1e9


def near_misses(run: dict) -> dict[str, float]:
    total = run["bytes_read"] + run["bytes_written"]
    return {
        "counting only the bytes read": run["bytes_read"] / run["seconds"] / 1e9,
        "counting only the bytes written": run["bytes_written"] / run["seconds"] / 1e9,
        "in GiB/s instead of GB/s": total / run["seconds"] / 2**30,
        "per repetition instead of in total": total / run["repeats"] / run["seconds"] / 1e9,
        "twice the bytes read (a copy's rule on a workload that is not a copy)": 2
        * run["bytes_read"]
        / run["seconds"]
        / 1e9,
    }


def peaks(evidence: dict) -> tuple[float, float]:
    """(best achieved GB/s of the streaming copies, the GEMM's FLOP/s)."""
    runs = evidence["runs"]
    bw = max(achieved_gbps(r) for name, r in runs.items() if name.startswith("copy-"))
    gemm = runs["gemm"]
    return bw, gemm["flops"] / gemm["seconds"]


def diagnose(evidence: dict) -> dict:
    peak_bw, peak_flops = peaks(evidence)
    step = evidence["runs"][SERVICE]
    achieved = achieved_gbps(step)
    share_bw = achieved / peak_bw
    share_flops = step["flops"] / step["seconds"] / peak_flops
    if share_bw >= BANDWIDTH_BOUND:
        bound = "memory bandwidth"
    elif share_flops >= COMPUTE_BOUND:
        bound = "compute"
    else:
        bound = "overhead"
    return {
        "bound": bound,
        "achieved_gbps": achieved,
        "share_of_peak_bandwidth": share_bw,
        "share_of_peak_flops": share_flops,
    }


# ---- written records: answers known, near misses apart ---------------------------------------
def _run(read, written, flops, seconds, repeats, util):
    return {
        "bytes_read": read,
        "bytes_written": written,
        "flops": flops,
        "seconds": seconds,
        "repeats": repeats,
        "readings": {"cpu_util": util},
    }


HAND_MADE = _run(3_000_000_000, 1_000_000_000, 0, 2.0, 4, 97.0)  # 2.0 GB/s; GiB 1.86; read 1.5
_REFS = {
    "copy-64MiB": _run(4_000_000_000, 4_000_000_000, 0, 1.0, 60, 99.0),  # 8 GB/s
    "copy-128MiB": _run(3_800_000_000, 3_800_000_000, 0, 1.0, 28, 99.0),  # 7.6 GB/s
    "small-copies": _run(120_000_000, 120_000_000, 0, 0.2, 120_000, 98.0),
    "gemm": _run(300_000_000, 150_000_000, 10_000_000_000, 0.1, 20, 99.0),  # 100 GFLOP/s
}
WRITTEN = {
    "a matrix read once per step": {
        "device": "cpu",
        "runs": {**_REFS, SERVICE: _run(1_300_000_000, 80_000, 330_000_000, 0.2, 10, 99.0)},
    },
    "a batch multiplied at once": {
        "device": "cpu",
        "runs": {**_REFS, SERVICE: _run(90_000_000, 30_000_000, 16_000_000_000, 0.2, 4, 99.0)},
    },
    "blocks copied one call each": {
        "device": "cpu",
        "runs": {**_REFS, SERVICE: _run(150_000_000, 150_000_000, 0, 0.2, 9, 99.0)},
    },
}


# ---- the fix: the gauge an alert reads, and the pools it runs on ---------------------------
_METRIC = re.compile(r"\bDCGM_[A-Z0-9_]+\b")


def alert_metrics(text: str) -> dict[str, set[str]]:
    """Alert name -> the DCGM metrics its expression reads (a YAML parse, no PromQL parse)."""
    doc = yaml.safe_load(text) or {}
    out = {}
    for group in doc.get("groups", []) or []:
        for rule in group.get("rules", []) or []:
            if "alert" in rule:
                out[str(rule["alert"])] = set(_METRIC.findall(str(rule.get("expr", ""))))
    return out


def fix_pools(seed: int) -> dict[str, pool.Pool]:
    """Pools the rule must page right on: this seed's night, another with two GPUs loading
    models in bursts, and a night with no saturation at all."""
    return {
        f"this variant's pool (seed {seed})": pool.build(scenario.variant(seed).pool_seed),
        "a pool where two GPUs load models in bursts": pool.build(
            1000 + seed, roles=("bursts", "gemm", "saturating", "bursts", "small_copies", "idle")
        ),
        "a night without saturation": pool.build(
            2000 + seed, roles=("gemm", "gemm", "small_copies", "bursts", "idle", "bursts")
        ),
    }


# ---- interviewer material -------------------------------------------------------------------
BOUND_OF_STEP = {"weights": "memory bandwidth", "batch": "compute", "blocks": "overhead"}


def answer_key(seed: int) -> dict:
    v = scenario.variant(seed)
    return {
        "step": v.step,
        "bound": BOUND_OF_STEP[v.step],
        "step_size": v.step_size,
        "small_copy_bytes": v.small_bytes,
        "gemm_n": v.gemm_n,
        "written_answers": {k: diagnose(e)["bound"] for k, e in WRITTEN.items()},
        "gauge": GAUGE,
        "saturating_gpu": pool.build(v.pool_seed).episodes[0][0],
    }


def expected(seed: int) -> dict:
    v = scenario.variant(seed)
    key = answer_key(seed)
    share = {
        "weights": "0.7-1.3 of the copy peak on one CPU core (read-mostly work can beat a copy: "
        "a CPU copy also reads every line it writes); ~0.8-0.95 of the theoretical peak on a GPU",
        "batch": "well under 0.3 of the copy peak, near 1 of the GEMM's FLOP/s",
        "blocks": "0.1-0.3 of the copy peak, no arithmetic: each copy call's cost dominates",
    }[v.step]
    return {
        "llm-serve's step": f"{v.step} (size {v.step_size}): bounded by {key['bound']}",
        "its measured share": share,
        "the readings": "on the CPU every workload shows the same CPU utilisation (under load "
        "50-90 %); on the recorded H100 utilization.gpu is 99 % for both the GEMM and the 4 GiB "
        "copies, utilization.memory 100 % for copies moving 90 % of the theoretical peak, 33 % "
        "for the GEMM, 0 % for 1 MiB copies that stay in L2",
        "the gauge": f"{GAUGE} (GPM DRAM_BW_UTIL): 0.90 for 3017 of 3352 GB/s",
        "a passing fix": f"{GAUGE} > 0.7-0.8 for 5-8m; the pool's saturating GPU is gpu "
        f"{key['saturating_gpu']}; model-load bursts of 90 s must not page",
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Computes achieved GB/s as (bytes read + written) / s, compares it with a peak "
            "measured on the same machine (the best streaming copy), and the step's FLOP/s with "
            "the GEMM's; names what bounds llm-serve's step from both shares, and says why "
            "utilisation readings cannot: they measure how much of the time something was busy."
        ),
        "adequate": (
            "Right arithmetic, but compares with the datasheet peak only, or names the bound "
            "without the second share (bandwidth without FLOP/s)."
        ),
        "weak": (
            "Reads DCGM_FI_DEV_MEM_COPY_UTIL or GPU utilisation as bandwidth, or counts only the "
            "bytes read."
        ),
    },
    "fix": {
        "strong": (
            "An alert on DCGM_FI_PROF_DRAM_ACTIVE (GPM DRAM bandwidth on Hopper) against the "
            "ceiling measured on the card (~0.9 of theoretical for copies on H100), sustained "
            "for minutes so model loads do not page; no utilisation in it."
        ),
        "adequate": "The right gauge with a threshold of 0.95+ (never reached) or no `for:`.",
        "weak": "Keeps DCGM_FI_DEV_MEM_COPY_UTIL > 90, or alerts on GPU utilisation.",
    },
    "reasoning": {
        "strong": (
            "Explains the duty cycle (NVML: percent of time over the sample period memory was "
            "read or written; 1 MiB copies served from L2 read 0 %), that profiling metrics need "
            "DCGM's profiling module (exclusive with Nsight: dcgmi profile --pause), decode is "
            "bandwidth-bound (weights + KV bytes per step / step time), and uses Nsight Compute "
            "(dram__throughput) for depth."
        ),
        "adequate": "Knows MEM_COPY_UTIL is not bandwidth but not why, or not the alternative.",
        "weak": "Treats 'memory utilisation' as memory used or as bandwidth.",
    },
}
