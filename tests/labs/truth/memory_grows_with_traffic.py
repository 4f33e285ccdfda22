"""Lab 294's reference answers and interviewer material (never part of the package).

    >>> from tests.labs.truth import memory_grows_with_traffic as truth
    >>> [(truth.answer_key(s)["cause"], truth.answer_key(s)["dimension"]) for s in (0, 1, 2)]
    [('recordings', 'length'), ('compiles', 'batch'), ('recordings', 'batch')]
    >>> ev, want = truth.synthetic("compiles", "batch", seed=3)
    >>> truth.explain(ev) == want
    True

Two causes grow the same dashboard line after `torch.compile(mode="reduce-overhead")`:
- "compiles": the deployment compiles with `dynamic=False`, so every new request shape fails
  the guards and Dynamo compiles the model again (a new graph, a new CUDA graph with its private
  pool, a stall of a compile). At `recompile_limit` (8 by default) Dynamo gives up and runs
  every new shape as plain eager code from then on (the fallback: no error, just slower);
  a team that raised the limit instead keeps compiling, and keeps the memory of every graph.
- "recordings": the deployment keeps torch's default (`dynamic=None`): the second shape makes
  Dynamo recompile once with a dynamic size, and from then on that one graph records a new
  CUDA graph for each distinct size it meets ("CUDAGraph supports dynamic shapes by recording a
  new graph for each distinct input size"): a memory step per size, without any recompile.
The diagnosis reads both from the log and the dashboard: the log's recompiles, the memory
steps (one per recording), the request during which Dynamo gave up, which dimension varies.
"""

from __future__ import annotations

import math
import random
import re

import numpy as np

from labsupport.scenarios import memory_grows_with_traffic as scenario
from labsupport.scenarios.memory_grows_with_traffic import traffic

CAUSES = ("compiles", "recordings")
DIMENSIONS = ("batch", "length")
KEYS = ("cause", "dimension", "recompiles", "graphs", "fallback_request", "graph_mib")
MIB_TOLERANCE = 0.5
MAX_SHAPES = 8  # the deployment's recompile limit, and every shape keeps memory
MAX_WASTE = 1.6  # tokens computed / tokens asked, over the traffic
MIN_P99_RATIO = 3.0  # p99 latency of the traffic, as deployed / fixed
ATOL, RTOL = 2e-4, 1e-3  # logits, CPU float32 (a GPU run compares with 5e-3)

_REQUEST = re.compile(r"\] request (\d+): batch (\d+) x (\d+) tokens")
_MISMATCH = re.compile(r"size mismatch at index (\d+)")


def cause_of(variant) -> str:
    return "recordings" if variant.dynamic is None else "compiles"


def dimension_of(variant) -> str:
    return "batch" if variant.batch[0] != variant.batch[1] else "length"


# ---- the reference diagnosis, from the evidence alone ---------------------------------------
def explain(ev: dict) -> dict:
    """What the diagnosis must return for this evidence (log + dashboard)."""
    log, requests = ev["log"], ev["requests"]
    recompiles = sum("Recompiling function" in line for line in log)
    fallback, current = None, None
    for line in log:
        m = _REQUEST.search(line)
        if m:
            current = int(m.group(1))
        if "hit config.recompile_limit" in line and fallback is None:
            fallback = current
    base = float(ev["baseline_reserved_mib"])
    graphs, level = 0, base
    for r in requests:
        if r["reserved_mib"] > level + 1e-9:
            graphs += 1
        level = max(level, r["reserved_mib"])
    batches = {r["batch"] for r in requests}
    lengths = {r["length"] for r in requests}
    dimension = "batch" if len(batches) > len(lengths) else "length"
    cause = "recordings" if graphs > recompiles + 1 else "compiles"
    last = requests[-1]["reserved_mib"] if requests else base
    return {
        "cause": cause,
        "dimension": dimension,
        "recompiles": recompiles,
        "graphs": graphs,
        "fallback_request": fallback,
        "graph_mib": round(last - base, 3),
    }


def from_run(run) -> dict:
    """The answer from the run's own bookkeeping (what ran), to cross-check the evidence.
    On a GPU, CUDA graph trees share one pool between graphs, so a recording does not always
    step memory_reserved up: the recordings are not cross-checked there."""
    eager = [r.index for r in run.requests if r.path == "eager"]
    mib = (run.final_reserved_bytes - run.warmed_reserved_bytes) / scenario.MiB
    books = {
        "recompiles": sum("Recompiling function" in line for line in run.log),
        "graphs": len(run.recordings),
        "fallback_request": eager[0] if eager else None,
        "graph_mib": round(mib, 3),
    }
    if not run.device.startswith("cpu"):
        del books["graphs"]
    return books


def near_misses(ev: dict) -> dict[str, dict]:
    """What the usual wrong readings of the same evidence give, named for the hint."""
    log, requests = ev["log"], ev["requests"]
    failures = sum(bool(_MISMATCH.search(line)) for line in log)
    shapes = traffic.distinct([(r["batch"], r["length"]) for r in requests])
    after = None
    want = explain(ev)
    if want["fallback_request"] is not None:
        after = want["fallback_request"] + 1
    first = requests[0]["reserved_mib"] if requests else 0.0
    return {
        "recompiles": {"the guard failures listed under each recompile": failures},
        "graphs": {
            "the distinct request shapes": len(shapes),
            "the recompiles": want["recompiles"],
        },
        "fallback_request": {"the request after the one Dynamo gave up on": after},
        "graph_mib": {
            "measured from the first request, not from the baseline": round(
                requests[-1]["reserved_mib"] - first, 3
            )
            if requests
            else 0.0
        },
    }


# ---- written evidence, built to separate the answer from the near misses ---------------------
def _stamp(t: float, level: str) -> str:
    whole = int(t)
    clock = f"{whole // 3600 % 24:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    if level == "INFO":
        return f"INFO 11-25 {clock}.{int(t % 1 * 1e3):03d} [server.py]"
    return f"{level}1125 {clock}.{int(t % 1 * 1e6):06d} 4242"


def _guards(t: float, frame: str) -> str:
    return f"{_stamp(t, 'V')} site-packages/torch/_dynamo/guards.py:5396] [{frame}] [__recompiles]"


def _pool_mib(shape: tuple[int, int]) -> float:
    b, n = shape  # logits of a 2048-token vocabulary and two more like them, in 2 MiB segments
    return 2.0 * max(1, math.ceil(b * n * 2048 * 4 * 3 / (2 * 2**20)))


def synthetic(cause: str, dimension: str, seed: int, *, limit: int = 8, n: int = 40):
    """(evidence, answer) of a made-up incident: a log and a dashboard in the server's format,
    with torch's lines as Dynamo writes them, and the answer the diagnosis must give."""
    rng = random.Random(f"294-synthetic-{cause}-{dimension}-{seed}")
    # a few popular sizes and a long tail, so that shapes repeat and the limit comes late
    if dimension == "length":
        fixed = rng.choice([2, 4, 8])
        sizes = sorted(rng.sample(range(8, 201), 24))
        shapes = [(fixed, rng.choices(sizes, weights=[1 / (k + 1) for k in range(24)])[0])
                  for _ in range(n)]  # fmt: skip
    else:
        fixed = rng.choice([32, 48, 64])
        sizes = rng.sample(range(1, 33), 20)
        shapes = [(rng.choices(sizes, weights=[1 / (k + 1) for k in range(20)])[0], fixed)
                  for _ in range(n)]  # fmt: skip
    index = 0 if dimension == "batch" else 1
    t = rng.uniform(30_000, 80_000)
    base = round(rng.uniform(3.0, 40.0), 1)
    log = [f"{_stamp(t, 'INFO')} model loaded on cuda; compiled with mode='reduce-overhead'"]
    requests, reserved = [], base
    entries: list[tuple[int, int]] = []  # the compiled graphs' shapes, newest first
    dynamic_sizes: set = set()
    gave_up = fallback = None
    graphs = recompiles = 0
    for i, shape in enumerate(shapes):
        t += rng.uniform(0.05, 0.4)
        log.append(f"{_stamp(t, 'INFO')} request {i}: batch {shape[0]} x {shape[1]} tokens")
        grown, ms = 0.0, rng.uniform(2, 15)
        size = shape[index]
        if cause == "compiles":
            if shape in entries or gave_up is not None:
                ms = rng.uniform(2, 15) if shape in entries else rng.uniform(8, 40)
            else:
                if entries:
                    recompiles += 1
                    frame = f"0/{len(entries)}"
                    log.append(f"{_guards(t, frame)} Recompiling function forward in "
                               "/srv/llm/model.py:42")  # fmt: skip
                    log.append(f"{_guards(t, frame)}     triggered by the following guard "
                               "failure(s):")  # fmt: skip
                    for k, old in reversed(list(enumerate(entries))):
                        log.append(
                            f"{_guards(t, frame)}     - 0/{k}: tensor 'ids' size mismatch at "
                            f"index {index}. expected {old[index]}, actual {size}"
                        )
                if len(entries) >= limit:
                    gave_up = fallback = i
                    w = f"{_stamp(t, 'W')} site-packages/torch/_dynamo/convert_frame.py:1994] "
                    log.append(w + f"[0/{limit}] torch._dynamo hit config.recompile_limit "
                               f"({limit})")  # fmt: skip
                    log.append(w + f"[0/{limit}]    function: 'forward' (/srv/llm/model.py:42)")
                    log.append(w + f"[0/{limit}] To log all recompilation reasons, use "
                               'TORCH_LOGS="recompiles".')  # fmt: skip
                    ms = rng.uniform(8, 40)
                else:
                    entries.append(shape)
                    graphs += 1
                    grown = _pool_mib(shape)
                    ms = rng.uniform(300, 1500)
        else:
            if not entries:
                entries.append(shape)
                graphs += 1
                grown, ms = _pool_mib(shape), rng.uniform(400, 1500)
            elif len(entries) == 1 and shape != entries[0]:
                recompiles += 1
                log.append(f"{_guards(t, '0/1')} Recompiling function forward in "
                           "/srv/llm/model.py:42")  # fmt: skip
                log.append(f"{_guards(t, '0/1')}     triggered by the following guard failure(s):")
                log.append(
                    f"{_guards(t, '0/1')}     - 0/0: tensor 'ids' size mismatch at index "
                    f"{index}. expected {entries[0][index]}, actual {size}"
                )
                entries.append(shape)
                dynamic_sizes.add(shape)
                graphs += 1
                grown, ms = _pool_mib(shape), rng.uniform(400, 1500)
            elif len(entries) == 2 and shape not in dynamic_sizes:
                dynamic_sizes.add(shape)  # the first shape too: the newest graph answers first
                graphs += 1
                grown, ms = _pool_mib(shape), rng.uniform(20, 80)
                if len(dynamic_sizes) > 8:
                    log.append(
                        f"{_stamp(t, 'W')} site-packages/torch/_inductor/cudagraph_utils.py:516]"
                        " [__cudagraphs] CUDAGraph supports dynamic shapes by recording a new "
                        "graph for each distinct input size. Recording too many CUDAGraphs may "
                        "lead to extra overhead. We have observed "
                        f"{len(dynamic_sizes)} distinct sizes."
                    )
        reserved = round(reserved + grown, 3)
        t += ms / 1e3
        log.append(
            f"{_stamp(t, 'INFO')} request {i} done in {ms:.1f} ms; memory reserved "
            f"{reserved:.1f} MiB"
        )
        requests.append(
            {
                "request": i,
                "batch": shape[0],
                "length": shape[1],
                "latency_ms": round(ms, 3),
                "reserved_mib": reserved,
            }
        )
    ev = {"log": log, "baseline_reserved_mib": base, "requests": requests}
    answer = {
        "cause": cause,
        "dimension": dimension,
        "recompiles": recompiles,
        "graphs": graphs,
        "fallback_request": fallback,
        "graph_mib": round(reserved - base, 3),
    }
    return ev, answer


def synthetic_cases(seed: int) -> dict[str, tuple[dict, dict]]:
    """Made-up incidents graded before this run's: both causes, both dimensions, a limit hit
    and one not hit."""
    return {
        "a made-up incident (dynamic=False, prompt lengths vary)": synthetic(
            "compiles", "length", seed
        ),
        "a made-up incident (torch's default dynamic, batch sizes vary)": synthetic(
            "recordings", "batch", seed
        ),
        "a made-up incident (dynamic=False, recompile_limit raised to 64, batch sizes vary)": (
            synthetic("compiles", "batch", seed + 100, limit=64)
        ),
    }


# ---- the fix: the capture shapes, on traffic the checks make ---------------------------------
def fit(shape: tuple[int, int], shapes) -> tuple[int, int] | None:
    """The smallest of `shapes` that holds `shape`, or None."""
    fits = [s for s in shapes if s[0] >= shape[0] and s[1] >= shape[1]]
    return min(fits, key=lambda s: (s[0] * s[1], s)) if fits else None


def waste(shapes, seen) -> float:
    """Tokens computed / tokens asked when every request of `seen` runs at its fit."""
    asked = sum(b * n for b, n in seen)
    done = sum(math.prod(fit(s, shapes)) for s in seen)
    return done / asked


def traffic_cases(seed: int) -> dict[str, tuple[list, int, int]]:
    """label -> (traffic seen, max_batch, max_length): the variant's own, others of both kinds,
    and a traffic of one shape."""
    v = scenario.variant(seed)
    rng = np.random.default_rng([294, seed, 9])
    own = traffic.shapes(v, v.requests("full"))
    other_len = int(rng.choice([384, 512]))
    lengths = [(2, int(np.clip(rng.lognormal(np.log(70), 0.8), 4, other_len))) for _ in range(80)]
    other_batch = int(rng.choice([48, 64]))
    batches = [(int(np.clip(rng.lognormal(np.log(9), 0.9), 1, other_batch)), 32) for _ in range(80)]
    return {
        "this variant's traffic": (own, v.max_batch, v.max_length),
        f"prompts of 4 to {other_len} tokens, batches of 2": (lengths, 2, other_len),
        f"batches of 1 to {other_batch} prompts of 32 tokens": (batches, other_batch, 32),
        "one shape only (16 x 40)": ([(16, 40)] * 12, 16, 40),
    }


# ---- interviewer material -------------------------------------------------------------------
def answer_key(seed: int) -> dict:
    """The variant's graded ground truth (the counts are measured in the grading run)."""
    v = scenario.variant(seed)
    return {
        "cause": cause_of(v),
        "dimension": dimension_of(v),
        "dynamic": v.dynamic,
        "recompile_limit": v.recompile_limit,
        "batch": v.batch,
        "length": v.length,
        "counts": "recompiles, graphs, fallback request, MiB: measured in the grading run",
    }


def expected(seed: int) -> dict:
    """What the interviewer should see in variant `seed` (the CPU stand-in, 2 cores)."""
    v = scenario.variant(seed)
    cause, dim = cause_of(v), dimension_of(v)
    varies = (
        f"batch sizes {v.batch[0]}-{v.batch[1]} (prompts of {v.length[0]} tokens)"
        if dim == "batch"
        else f"prompt lengths {v.length[0]}-{v.length[1]} tokens (batches of {v.batch[0]})"
    )
    if cause == "compiles" and v.recompile_limit == 8:
        story = (
            "dynamic=False: a 'Recompiling function forward' entry with a 'size mismatch' "
            "guard failure per new shape, a memory step and a compile stall (0.3-2 s on 2 "
            "cores) each; at the 9th shape 'torch._dynamo hit config.recompile_limit (8)', "
            "then every new shape runs eager: recompiles 8, graphs 8, memory flat afterwards"
        )
    elif cause == "compiles":
        story = (
            f"dynamic=False with recompile_limit raised to {v.recompile_limit}: a recompile, "
            "a stall and a memory step for every new shape, no fallback (None)"
        )
    else:
        story = (
            "torch's default dynamic: one recompile (the second shape makes the size "
            "dynamic), then a memory step per distinct size with no recompile, torch's "
            "'CUDAGraph supports dynamic shapes by recording a new graph for each distinct "
            "input size' warning past 8 sizes; graphs = distinct sizes + 1 (the first shape "
            "is recorded again by the dynamic graph); no fallback"
        )
    return {
        "deployment": f"torch.compile(mode='reduce-overhead', dynamic={v.dynamic}), "
        f"recompile_limit {v.recompile_limit}",
        "traffic": varies,
        "cause": cause,
        "what the run shows": story,
        "a passing fix": (
            "capture shapes: powers of two on the varying dimension up to its maximum, the "
            "other dimension fixed (5-6 shapes); pad at the end (rows of zeros, positions "
            "after the prompt), slice the output back; warm every shape up three times, then "
            "torch.compiler.set_stance('fail_on_recompile')"
        ),
        "fixed run": "no compile or recording during traffic, memory flat after warm-up, p99 "
        "latency 10-40x lower than as deployed (the compile stalls are gone)",
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Reads TORCH_LOGS=recompiles and the memory dashboard together: counts the "
            "recompiles, ties each memory step to a recording, finds the request where Dynamo "
            "hit recompile_limit and fell back to eager (or says there was none), names the "
            "dimension from the 'size mismatch at index N' guard, and tells a recompile per "
            "shape from one dynamic graph recording a CUDA graph per size."
        ),
        "adequate": (
            "Sees that memory grows with new shapes and blames torch.compile, but counts "
            "guard failures or distinct shapes instead of recompiles and recordings, or "
            "misses the fallback."
        ),
        "weak": "Calls it a tensor leak, restarts the server, or raises recompile_limit.",
    },
    "fix": {
        "strong": (
            "Pads at the end to a handful of capture shapes on the varying dimension only "
            "(powers of two, capped by the maximum), slices the output back so logits equal "
            "eager, warms every shape up before traffic and sets "
            "set_stance('fail_on_recompile') after warm-up."
        ),
        "adequate": (
            "Buckets, but both dimensions (too many shapes), or one bucket at the maximum "
            "(padding waste), or never forbids recompiles after warm-up."
        ),
        "weak": (
            "mark_dynamic alone (still a recording per size under reduce-overhead), "
            "eager_on_recompile or force_eager (hides the symptom, loses the graphs), or a "
            "bigger recompile_limit."
        ),
    },
    "reasoning": {
        "strong": (
            "Explains private pools per CUDA graph, why the limit's fallback is silent and "
            "slow, why left padding breaks the logits (positions), why vLLM captures a fixed "
            "list of sizes (cudagraph_capture_sizes) and pads the batch to the next one, and "
            "what cudagraph_skip_dynamic_graphs trades away."
        ),
        "adequate": "Knows padding to buckets helps but not why memory kept growing.",
        "weak": "Treats torch.compile as a black box that sometimes leaks.",
    },
}
