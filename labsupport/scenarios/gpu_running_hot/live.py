"""A GPU at rest and under a sustained GEMM, sampled through NVML: live, or the H100 recording.

    >>> from labsupport.scenarios.gpu_running_hot import live
    >>> t = live.observe(use_gpu=False)
    >>> t.phase_names(), t.card.gpu_max_op_c
    (['idle', 'gemm', 'idle_after'], 87)
    >>> fired = live.rules_on_trace(live.alerts.NAIVE_RULES, t)
    >>> sorted(fired)
    ['gemm', 'idle', 'idle_after']

With a GPU (`use_gpu=True` or None where one is present): NVML is sampled every 0.1 s while the
card idles, then runs a bf16 GEMM loop in a child process, then idles again; the card draws what
its power management allows. Without one: the same three phases of the trace recorded on an
H100 (`labsupport.telemetry.trace.recorded`). `rules_on_trace` scrapes the samples every second
into dcgm-exporter's series and runs a rule file over them in promtool: the share of each phase's
evaluations in which an alert fired.
"""

from __future__ import annotations

import time

import numpy as np

from labsupport.scenarios.gpu_running_hot import alerts
from labsupport.telemetry import dcgm, gpu_load, nvml, promtool, trace

SCRAPE_S = 1


def observe(use_gpu: bool | None = None, *, idle_s: float = 6.0, gemm_s: float = 30.0):
    """Idle, GEMM, idle: a live Trace on a GPU, else the recorded H100's."""
    if use_gpu is None:
        from labsupport import device

        use_gpu = device.cuda_available() and nvml.available()
    if not use_gpu:
        t = trace.recorded()
        return t.select(np.isin(t.phases, ["idle", "gemm", "idle_after"]))
    sampler = nvml.Sampler(interval_s=0.1)
    with sampler:
        sampler.mark("idle")
        time.sleep(idle_s)
        sampler.mark("gemm")
        run = gpu_load.run_gemm(seconds=gemm_s)
        sampler.mark("idle_after")
        time.sleep(idle_s)
    out = sampler.trace()
    out.notes["gemm"] = run
    return out


def rules_on_trace(rules: str, t) -> dict[str, float]:
    """Phase -> share of its one-second evaluations in which any alert fired."""
    at = list(range(0, int(t["t_s"][-1]) + 1, SCRAPE_S))
    scraped = dcgm.scrape(t, at)
    labels = dcgm.labels(gpu=0, card=t.card, hostname="this-node")
    series = [promtool.Series(name, labels, values) for name, values in scraped.items()]
    fired = promtool.firing(rules, series, keys=["0"], interval_s=SCRAPE_S, until_s=at[-1])
    idx = np.searchsorted(t["t_s"], at, side="right") - 1
    share: dict[str, list[bool]] = {}
    for second, i in zip(at, idx, strict=True):
        share.setdefault(str(t.phases[max(i, 0)]), []).append(bool(fired[second]))
    return {phase: float(np.mean(hits)) for phase, hits in share.items()}


__all__ = ["observe", "rules_on_trace", "alerts"]
