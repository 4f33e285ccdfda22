"""Lab 276, OOM while monitoring shows free memory: a worker's batch on a card it shares.

    >>> from labsupport.scenarios import oom_despite_free_memory as scenario
    >>> v = scenario.variant(0)
    >>> run = scenario.run(v, backend="simulator")
    >>> run.outcome, run.cap_bytes == v.budget_bytes
    ('oom', True)
    >>> sorted(scenario.evidence(v, run))[:3]
    ['card', 'deployment', 'memory_stats']

The incident: an embedding worker (this process) runs under a memory budget
(`set_per_process_memory_fraction`) on an 80 GB card that it shares with an LLM server
(vLLM, sized by `gpu_memory_utilization`). Its batch asks for one more tensor and dies with
CUDA out of memory while the dashboards show memory to spare. What a seed varies
(`variant(seed)`): the sizes and order of the worker's tensors, its budget, the request, the
server's utilization before and after its redeploy, and with them which limit refused the
request. The notebook gets the incident's page (`page`), the run (`run`, the real allocator
on a GPU, the simulator otherwise) and the evidence an on-call engineer can collect
(`evidence`: the OOM message, the allocator's snapshot and statistics, the card's free memory
and processes, the deployment's settings). A fix is a deployment (`apply_plan`): the worker's
allocator environment and the server's utilization.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from labsupport.memory.config import MiB
from labsupport.memory.simulator import H100_TOTAL_BYTES
from labsupport.scenarios.oom_despite_free_memory.workload import (
    CUDA_CONTEXT_BYTES,
    Op,
    WorkloadResult,
    carved_trace,
    run_trace,
)

__all__ = [
    "Variant",
    "variant",
    "run",
    "evidence",
    "deployment",
    "apply_plan",
    "page",
    "oom_text",
    "card_table",
    "plan_keys",
]

SERVER = "vllm serve (LLM server)"
PLAN_KEYS = ("worker_env", "server_gpu_memory_utilization")


@dataclass(frozen=True)
class Variant:
    """One incident: the worker's trace and budget, the server's utilization, the card."""

    seed: int
    budget_mib: int
    server_before: float  # the LLM server's gpu_memory_utilization before its redeploy
    server_after: float  # ... and after it (what it runs with when the worker dies)
    server_needs_mib: int  # the least the server needs: weights + KV cache for its limits
    trace: tuple[Op, ...]  # the worker's batch, with the server's redeploy where it happened
    total_mib: int = H100_TOTAL_BYTES // MiB
    context_mib: int = CUDA_CONTEXT_BYTES // MiB

    @property
    def budget_bytes(self) -> int:
        return self.budget_mib * MiB

    @property
    def total_bytes(self) -> int:
        return self.total_mib * MiB

    @property
    def context_bytes(self) -> int:
        return self.context_mib * MiB

    @property
    def request_bytes(self) -> int:
        return next(op.size_bytes for op in self.trace if op.kind == "request")

    def server_bytes(self, utilization: float) -> int:
        return round(utilization * self.total_mib) * MiB


def _with_server(v_trace: list[Op], before: float, after: float, total_mib: int) -> list[Op]:
    """The server holds `before` from the start and is redeployed with `after` just before the
    worker's request (the dashboards were last scraped between the two)."""
    head = [Op("external", SERVER, round(before * total_mib) * MiB)]
    redeploy = Op("external", SERVER, round(after * total_mib) * MiB)
    return head + v_trace[:-1] + [redeploy, v_trace[-1]]


def _needs(rng: random.Random, total_mib: int, budget_mib: int, context_mib: int) -> int:
    fits = total_mib - budget_mib - context_mib  # what the card can give the server
    return int(fits * rng.uniform(0.86, 0.95))


def _layout_a(seed, rng, *, big, pieces, piece, request, budget, before, after) -> Variant:
    total, ctx = H100_TOTAL_BYTES // MiB, CUDA_CONTEXT_BYTES // MiB
    trace = carved_trace(big_mib=big, pieces=pieces, piece_mib=piece, request_mib=request)
    return Variant(
        seed=seed,
        budget_mib=budget,
        server_before=before,
        server_after=after,
        server_needs_mib=_needs(rng, total, budget, ctx),
        trace=tuple(_with_server(trace, before, after, total)),
    )


def _layout_b(seed, rng, *, weights, scratch, request, budget, before, card_free) -> Variant:
    total, ctx = H100_TOTAL_BYTES // MiB, CUDA_CONTEXT_BYTES // MiB
    quarter = scratch // 4
    trace = [Op("alloc", "weights", weights * MiB), Op("alloc", "scratch", scratch * MiB)]
    trace += [Op("free", "scratch")]
    trace += [Op("alloc", f"b{k}", quarter * MiB) for k in range(4)]
    trace += [Op("free", "b1"), Op("request", "req", request * MiB)]
    reserved = weights + scratch
    after = int((total - ctx - reserved - card_free) / total * 1000) / 1000  # 3 decimals, as set
    return Variant(
        seed=seed,
        budget_mib=budget,
        server_before=before,
        server_after=after,
        server_needs_mib=_needs(rng, total, budget, ctx),
        trace=tuple(_with_server(trace, before, after, total)),
    )


def _draw(seed: int, rng: random.Random, layout: str | None = None) -> Variant:
    """One candidate incident; `layout` "a" or "b" picks the worker's pattern (None: the seed)."""
    before = rng.choice((0.85, 0.88, 0.90))
    first = rng.random() < 0.5
    if layout is not None:
        first = layout == "a"
    if first:
        piece = rng.choice((60, 70, 80, 90, 100, 120))
        pieces = rng.choice(range(6, 15, 2))
        big = pieces * piece + rng.choice((0, 20, 40))
        request = piece + rng.choice(range(30, 2 * piece + 1, 10))
        budget = big + request - rng.choice(range(20, min(request, 200), 10))
        after = round(before + rng.choice((0.0, 0.01, 0.02)), 2)
        return _layout_a(
            seed, rng, big=big, pieces=pieces, piece=piece, request=request, budget=budget,
            before=before, after=after,
        )  # fmt: skip
    scratch = rng.choice((160, 200, 240, 280))
    weights = rng.choice(range(500, 1001, 50))
    request = rng.choice(range(200, 421, 20))
    budget = weights + scratch + request + rng.choice(range(60, 301, 20))
    card_free = int(request * rng.uniform(0.2, 0.6))
    return _layout_b(
        seed, rng, weights=weights, scratch=scratch, request=request, budget=budget,
        before=before, card_free=card_free,
    )  # fmt: skip


def _candidate_plans(v: Variant) -> list[dict]:
    """The two kinds of change a deployment can make: the worker's allocator settings, or the
    server's share (the largest that leaves the worker its budget and context)."""
    room = v.total_bytes - v.budget_bytes - v.context_bytes
    return [
        {
            "worker_env": {"PYTORCH_ALLOC_CONF": "expandable_segments:True"},
            "server_gpu_memory_utilization": v.server_after,
        },
        {"worker_env": {}, "server_gpu_memory_utilization": int(room / v.total_bytes * 100) / 100},
    ]


def _sound(v: Variant) -> bool:
    """The incident happens (OOM at the request), exactly one kind of change cures it, the
    cure at least doubles the largest request that fits, and the server keeps what it needs."""
    from labsupport.scenarios.oom_despite_free_memory.workload import PROBE_STEP_BYTES

    broken = run(v, backend="simulator")
    if broken.outcome != "oom" or v.trace[broken.failed_op_index].kind != "request":
        return False
    plans = _candidate_plans(v)
    if v.server_bytes(plans[1]["server_gpu_memory_utilization"]) < v.server_needs_mib * MiB:
        return False
    cures = [p for p in plans if run(v, p, backend="simulator").ok]
    if len(cures) != 1:
        return False
    if cures[0] is plans[0] and broken.card_free_bytes < 4 * v.request_bytes:
        return False  # the card has clearly room when the worker's own limit is the problem
    before = run(v, probe=True, backend="simulator").largest_request_bytes or 0
    after = run(v, cures[0], probe=True, backend="simulator").largest_request_bytes or 0
    return before >= PROBE_STEP_BYTES and after >= 2 * before


def variant(seed: int) -> Variant:
    """The incident of `seed` (0: the lab's default). Deterministic; never an unsound one."""
    if seed == 0:
        rng = random.Random("lab276:0")
        return _layout_a(
            0, rng, big=1000, pieces=10, piece=100, request=200, budget=1100,
            before=0.90, after=0.92,
        )  # fmt: skip
    rng = random.Random(f"lab276:{seed}")
    for _ in range(200):
        v = _draw(seed, rng)
        if _sound(v):
            return v
    raise RuntimeError(f"no sound variant for seed {seed}")  # pragma: no cover


def deployment(v: Variant) -> dict:
    """The card's deployment as it runs at the incident (what a fix may change)."""
    return {
        "card_total_bytes": v.total_bytes,
        "worker_budget_bytes": v.budget_bytes,
        "worker_context_bytes": v.context_bytes,
        "worker_env": {},
        "server": SERVER,
        "server_gpu_memory_utilization": v.server_after,
        "server_needs_bytes": v.server_needs_mib * MiB,
    }


def plan_keys() -> tuple[str, ...]:
    return PLAN_KEYS


def apply_plan(v: Variant, plan: dict | None) -> tuple[list[Op], dict]:
    """The trace and worker environment that `plan` (a deployment's changes) makes."""
    if not plan:
        return list(v.trace), {}
    utilization = float(plan.get("server_gpu_memory_utilization", v.server_after))
    trace = list(v.trace)
    last = max(i for i, op in enumerate(trace) if op.kind == "external")
    trace[last] = Op("external", SERVER, v.server_bytes(utilization))
    return trace, dict(plan.get("worker_env") or {})


def run(
    v: Variant,
    plan: dict | None = None,
    *,
    probe: bool = False,
    empty_cache_before_request: bool = False,
    backend: str = "auto",
    fresh_process: bool | None = None,
) -> WorkloadResult:
    """The worker's batch under `plan` (None: as deployed). probe: stop before the request and
    bisect the largest request that still fits (the lab's headline). empty_cache_before_request:
    call torch.cuda.empty_cache() just before the request, as the classic advice says."""
    trace, env = apply_plan(v, plan)
    if empty_cache_before_request:
        trace.insert(len(trace) - 1, Op("empty_cache"))
    if probe:
        trace = [op for op in trace if op.kind != "request"]
    return run_trace(
        trace,
        cap_bytes=v.budget_bytes,
        alloc_env=env,
        backend=backend,
        fresh_process=fresh_process,
        probe_largest_request=probe,
        total_bytes=v.total_bytes,
        context_bytes=v.context_bytes,
    )


def evidence(v: Variant, result: WorkloadResult) -> dict:
    """What on-call can collect after the crash, as plain data (what the exercises receive)."""
    return {
        "oom_message": result.oom_message,
        "request_bytes": v.request_bytes,
        "snapshot": result.snapshot,
        "memory_stats": dict(result.memory_stats),
        "card": {"total_bytes": result.total_bytes, "free_bytes": result.card_free_bytes},
        "processes": [dict(p) for p in result.processes],
        "deployment": deployment(v),
    }


_ADVICE = re.compile(r"\s*If reserved but unallocated memory is large.*$", re.S)


def oom_text(message: str) -> str:
    """The OOM message's facts, one clause a line; torch's closing advice is shown after the
    diagnosis (it recommends one setting whatever the cause)."""
    facts = _ADVICE.sub("", message)
    lines = re.sub(r"(?<=\.) (?=[A-Z0-9])", "\n", facts.replace("allowed; ", "allowed;\n"))
    return lines + (
        "\n[torch's closing advice: shown after the diagnosis]" if facts != message else ""
    )


def card_table(result: WorkloadResult) -> str:
    """The card's processes at the end of the run, as nvidia-smi --query-compute-apps lists them."""
    lines = [f"{'pid':>7}  {'used_memory':>12}  process"]
    for p in result.processes:
        lines.append(f"{p['pid']:>7}  {p['used_bytes'] / MiB:>8.0f} MiB  {p['name']}")
    lines.append(
        f"card: {result.total_bytes / MiB:.0f} MiB total, {result.card_free_bytes / MiB:.0f} MiB "
        "free (mem_get_info)"
    )
    return "\n".join(lines)


def page(v: Variant) -> str:
    """The incident as on-call receives it, with this variant's dashboards (scraped at 03:11:30,
    35 s before the crash)."""
    last = max(i for i, op in enumerate(v.trace) if op.kind == "external")
    scrape = run_trace(  # the worker between batches, before the redeploy
        list(v.trace[:last]),
        cap_bytes=v.budget_bytes,
        backend="simulator",
        total_bytes=v.total_bytes,
        context_bytes=v.context_bytes,
    )
    server_gib = v.server_bytes(v.server_before) / 2**30
    worker_gib = (v.context_bytes + scrape.reserved_bytes) / 2**30
    used_gib = server_gib + worker_gib
    total_gib = v.total_bytes / 2**30
    return "\n".join(
        [
            "PAGE - SEV3 - embed-worker-2 crash-looping (03:12:05 UTC)",
            "",
            "  torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
            f"{v.request_bytes / MiB:.2f} MiB. (full message in the worker's log)",
            "",
            "Dashboards, last scrape 03:11:30 (every 60 s):",
            f"  GPU 0 memory used (DCGM_FI_DEV_FB_USED)     {used_gib:6.2f} of {total_gib:.2f} GiB"
            f" ({100 * used_gib / total_gib:.0f}%)",
            f"  embed-worker-2 budget (memory fraction)   {v.budget_mib:6d} MiB",
            f"  embed-worker-2 memory_reserved()          {scrape.reserved_bytes / MiB:6.0f} MiB",
            f"  embed-worker-2 memory_allocated()         {scrape.allocated_bytes / MiB:6.0f} MiB",
            "  vllm serve vllm:cache_config_info{gpu_memory_utilization="
            f'"{v.server_before:.2f}"}}',
            "",
            "What changed: 02:40 embed-worker release (new batching of embedding requests);",
            "              03:11 vllm serve redeployed by its team (new image and settings).",
        ]
    )
