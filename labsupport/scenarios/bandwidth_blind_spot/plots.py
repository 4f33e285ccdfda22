"""Lab 296's figures: readings per workload, readings beside measured shares, a pool's night.

>>> from labsupport.scenarios.bandwidth_blind_spot import plots, pool
>>> fig = plots.readings({"copy": {"cpu_util": 97.0}, "gemm": {"cpu_util": 99.0}})
>>> len(fig.axes)
1
>>> len(plots.pool_panels(pool.build(0)).axes)
2
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from labsupport.plots import AFTER_COLOUR, BEFORE_COLOUR, NEUTRAL_COLOUR

LABELS = {
    "cpu_util": "CPU utilisation",
    "nvml_util_gpu": "NVML utilization.gpu",
    "nvml_util_mem": "NVML utilization.memory",
    "gpm_dram_bw_util": "GPM DRAM bandwidth",
}


def readings(per_workload: dict[str, dict[str, float]], title: str = "") -> Figure:
    """Grouped bars: each workload's dashboard readings (%)."""
    names = list(per_workload)
    keys = [k for k in LABELS if any(k in r for r in per_workload.values())]
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(keys))
    colours = [BEFORE_COLOUR, "tab:orange", "tab:blue", NEUTRAL_COLOUR]
    for k, key in enumerate(keys):
        x = np.arange(len(names)) + k * width
        values = [per_workload[n].get(key, np.nan) for n in names]
        ax.bar(x, values, width, label=LABELS[key], color=colours[k % len(colours)])
    ax.set_xticks(np.arange(len(names)) + width * (len(keys) - 1) / 2, names, fontsize=9)
    ax.set_ylabel("%")
    ax.set_ylim(0, 110)
    ax.legend(fontsize=8)
    ax.set_title(title or "what the dashboards read")
    return fig


def shares(rows: dict[str, tuple[float, float]], *, reading: str, title: str) -> Figure:
    """Per workload: a dashboard reading beside the measured share of the peak (both in %)."""
    names = list(rows)
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x - 0.2, [rows[n][0] for n in names], 0.4, label=reading, color=BEFORE_COLOUR)
    ax.bar(
        x + 0.2,
        [rows[n][1] for n in names],
        0.4,
        label="measured share of the peak",
        color=AFTER_COLOUR,
    )
    ax.set_xticks(x, names, fontsize=9)
    ax.set_ylabel("%")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return fig


def pool_panels(p, title: str = "") -> Figure:
    """The pool's night: memory utilisation and the DRAM gauge of each GPU."""
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    minutes = np.asarray(p.t_s) / 60
    for gpu, s in p.gpus.items():
        axes[0].plot(minutes, s["DCGM_FI_DEV_MEM_COPY_UTIL"], lw=1, label=f"gpu {gpu}")
        axes[1].plot(minutes, 100 * np.asarray(s["DCGM_FI_PROF_DRAM_ACTIVE"]), lw=1)
    axes[0].set_title("DCGM_FI_DEV_MEM_COPY_UTIL (%)", fontsize=10)
    axes[1].set_title("DCGM_FI_PROF_DRAM_ACTIVE (x100)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("minutes")
        ax.set_ylim(-5, 110)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(title or f"{p.hostname}, one night (H100 recorded readings)")
    return fig
