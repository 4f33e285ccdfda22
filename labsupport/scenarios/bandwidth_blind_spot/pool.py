"""A pool's GPUs as dcgm-exporter exported them, built from the H100 recording, for alert rules.

    >>> from labsupport.scenarios.bandwidth_blind_spot import pool
    >>> p = pool.build(0)
    >>> sorted(set(p.roles)) == sorted(pool.ROLES)
    True
    >>> s = pool.score(pool.TEAM_RULES, {"night": p})
    >>> s.pages_real, len(s.missed)
    (1, 0)

Every scrape of every GPU is one sample of the H100 recording (`labsupport.telemetry.trace`),
drawn from the steady part of the phase that GPU is running: streaming copies that keep the
memory at its measured ceiling (`saturating`), the GEMM loop, the 1 MiB copies, rest, or a
GPU that rests and every few minutes streams for 90 s (a model load, `bursts`). Nothing is
modelled or scaled: the readings are the recorded ones. A GPU whose memory stays at its
ceiling for the rest of the night is the one incident a bandwidth alert must page for, within
`MAX_DELAY_S`; bursts are not incidents.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from labsupport.telemetry import dcgm, paging, promtool, trace

INTERVAL_S = 15
WINDOW_S = 40 * 60
HOSTNAME = "pool-b-03"
ROLES = ("saturating", "gemm", "small_copies", "idle", "bursts")
MAX_DELAY_S = 600  # sustained saturation should page within 10 minutes
GRACE_S = 300
BURST_S = 90
TEAM_RULES = """\
groups:
- name: gpu-capacity
  rules:
  - alert: MemoryBandwidthSaturated
    expr: DCGM_FI_DEV_MEM_COPY_UTIL > 90
    for: 5m
    labels: {severity: page}
"""
METRICS = (
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_PROF_DRAM_ACTIVE",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_FB_USED",
)


@dataclass
class Pool:
    roles: tuple[str, ...]
    t_s: list[int]
    gpus: dict[str, dict[str, list[float]]]
    episodes: list[tuple[str, float, float]]
    card: trace.Card
    hostname: str = HOSTNAME


def _phases() -> tuple[trace.Card, dict[str, trace.Trace]]:
    t = trace.recorded()
    rest = t.select((t["util_gpu"] == 0) & (t["reasons"] == 1) & (t["sm_mhz"] == 345))
    busy = {
        name: t.phase(phase).active()
        for name, phase in (
            ("saturating", "bigcopy"),
            ("gemm", "gemm"),
            ("small_copies", "smallcopy"),
        )
    }
    return t.card, {"idle": rest, **busy}


def build(seed: int, roles: tuple[str, ...] | None = None) -> Pool:
    """The pool's night for `seed`: its GPUs' roles (shuffled), when the saturation starts."""
    rng = random.Random(f"296-pool-{seed}")
    card, phases = _phases()
    if roles is None:
        roles = list(ROLES) + [rng.choice(("bursts", "gemm"))]
        rng.shuffle(roles)
    t_s = list(range(0, WINDOW_S + 1, INTERVAL_S))
    start = rng.randrange(3 * 60, 12 * 60, INTERVAL_S)
    gpus, episodes = {}, []
    for index, role in enumerate(roles):
        plan = _plan(role, t_s, start, rng)
        if role == "saturating":
            episodes.append((str(index), start, t_s[-1]))
        series: dict[str, list[float]] = {name: [] for name in METRICS}
        for phase in plan:
            sample = phases[phase]
            i = rng.randrange(len(sample))
            for name in METRICS:
                column, factor = dcgm.FROM_TRACE[name]
                series[name].append(round(float(sample[column][i]) * factor, 6))
        gpus[str(index)] = series
    return Pool(tuple(roles), t_s, gpus, episodes, card)


def _plan(role: str, t_s: list[int], start: int, rng: random.Random) -> list[str]:
    if role == "saturating":
        return ["saturating" if t >= start else "gemm" for t in t_s]
    if role == "bursts":
        plan, next_burst = [], rng.randrange(60, 300, INTERVAL_S)
        for t in t_s:
            if next_burst <= t < next_burst + BURST_S:
                plan.append("saturating")
            else:
                if t >= next_burst + BURST_S:
                    next_burst = t + rng.randrange(360, 600, INTERVAL_S)
                plan.append("idle")
        return plan
    return [role] * len(t_s)


def series_for_promtool(p: Pool) -> list[promtool.Series]:
    out = []
    for gpu, metrics in p.gpus.items():
        labels = dcgm.labels(gpu=gpu, card=p.card, hostname=p.hostname)
        out += [promtool.Series(name, labels, values) for name, values in metrics.items()]
    return out


def cases(pools: dict[str, Pool]) -> dict[str, paging.Case]:
    return {
        name: paging.Case(
            series_for_promtool(p), list(p.gpus), list(p.episodes), p.t_s[-1], INTERVAL_S
        )
        for name, p in pools.items()
    }


def score(rules: str, pools: dict[str, Pool], timeline=None) -> paging.Score:
    """Pages, missed and late saturations of `rules` on `pools` (in promtool)."""
    return paging.score(
        rules, cases(pools), max_delay_s=MAX_DELAY_S, grace_s=GRACE_S, timeline=timeline
    )


def medians(p: Pool) -> dict[str, dict[str, float]]:
    """Per GPU, the median of each metric over the night (a dashboard's table)."""
    return {gpu: {k: float(np.median(v)) for k, v in s.items()} for gpu, s in p.gpus.items()}
