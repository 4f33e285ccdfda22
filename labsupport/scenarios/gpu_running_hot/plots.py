"""Lab 280's figures: one card's readings over time, a node's eight GPUs, the pages of two rules.

    >>> from labsupport.scenarios.gpu_running_hot import live, plots
    >>> fig = plots.trace_panels(live.observe(use_gpu=False), title="recorded H100")
    >>> len(fig.axes)
    4

The raw readings only: masks are drawn as the hex values NVML returns, with no meaning attached.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from labsupport.plots import AFTER_COLOUR, BEFORE_COLOUR, NEUTRAL_COLOUR


def _mask_axis(ax, times, masks) -> None:
    masks = np.asarray(masks, dtype=float)
    seen = sorted({int(m) for m in masks[~np.isnan(masks)]})
    rank = {m: i for i, m in enumerate(seen)}
    ax.step(
        times,
        [rank.get(int(m), np.nan) if not np.isnan(m) else np.nan for m in masks],
        where="post",
        color="black",
        lw=1,
    )
    ax.set_yticks(range(len(seen)), [f"0x{m:x}" for m in seen], fontsize=8)
    ax.set_ylim(-0.5, max(len(seen) - 0.5, 0.5))


def trace_panels(t, title: str) -> Figure:
    """Temperature, SM clock, power and the reasons mask of one card against time."""
    fig = Figure(figsize=(9, 7), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    x = t["t_s"]
    card = t.card
    axes[0].plot(x, t["temp_c"], color=BEFORE_COLOUR)
    for value, name in ((card.gpu_max_op_c, "max operating"), (card.slowdown_c, "slowdown")):
        if value:
            axes[0].axhline(value, color=NEUTRAL_COLOUR, ls="--", lw=0.8)
            axes[0].annotate(
                f"{name} {value} C",
                (x[-1], value),
                fontsize=8,
                ha="right",
                va="bottom" if name == "slowdown" else "top",
            )
    axes[0].set_ylabel("GPU temp (C)")
    axes[1].plot(x, t["sm_mhz"], color="tab:blue")
    if card.max_sm_mhz:
        axes[1].axhline(card.max_sm_mhz, color=NEUTRAL_COLOUR, ls="--", lw=0.8)
    axes[1].set_ylabel("SM clock (MHz)")
    axes[2].plot(x, t["power_w"], color="tab:orange")
    if card.power_limit_w:
        axes[2].axhline(card.power_limit_w, color=NEUTRAL_COLOUR, ls="--", lw=0.8)
        axes[2].annotate(
            f"power limit {card.power_limit_w:g} W",
            (x[0], card.power_limit_w),
            fontsize=8,
            va="top",
        )
    axes[2].set_ylabel("power (W)")
    _mask_axis(axes[3], x, t["reasons"])
    axes[3].set_ylabel("reasons mask")
    axes[3].set_xlabel("seconds")
    for name in t.phase_names():
        span = t["t_s"][t.phases == name]
        axes[0].annotate(name, (span[0], axes[0].get_ylim()[0]), fontsize=8, va="bottom")
    axes[0].set_title(title)
    return fig


def node_panels(node, title: str) -> Figure:
    """Each GPU of the node: temperature, SM clock and reasons mask over the window."""
    gpus = list(node.gpus)
    fig = Figure(figsize=(11, 1.3 * len(gpus) + 0.8), layout="constrained")
    axes = fig.subplots(len(gpus), 3, sharex=True)
    minutes = np.asarray(node.t_s) / 60
    for row, gpu in zip(axes, gpus, strict=True):
        s = node.gpus[gpu]
        row[0].plot(minutes, s["DCGM_FI_DEV_GPU_TEMP"], color=BEFORE_COLOUR, lw=1)
        row[0].set_ylabel(f"gpu {gpu}", rotation=0, ha="right", va="center")
        row[1].plot(minutes, s["DCGM_FI_DEV_SM_CLOCK"], color="tab:blue", lw=1)
        _mask_axis(row[2], minutes, s["DCGM_FI_DEV_CLOCKS_EVENT_REASONS"])
    for col, name in enumerate(("GPU temp (C)", "SM clock (MHz)", "reasons mask")):
        axes[0][col].set_title(name, fontsize=10)
        axes[-1][col].set_xlabel("minutes")
    fig.suptitle(title)
    return fig


def pages(node, scores: dict, title: str) -> Figure:
    """Per GPU, when each rule file paged (one bar per page), with the node's slowdowns."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.subplots()
    gpus = list(node.gpus)
    colours = [BEFORE_COLOUR, AFTER_COLOUR, NEUTRAL_COLOUR]
    for k, (label, score) in enumerate(scores.items()):
        offset = 0.2 - 0.4 * k / max(1, len(scores) - 1)
        for p in score.pages:
            y = gpus.index(p.gpu) + offset
            ax.plot(
                [p.start_s / 60, p.end_s / 60 + 0.1],
                [y, y],
                color=colours[k % 3],
                lw=4,
                solid_capstyle="butt",
                label=label,
            )
    for gpu, start, end in node.episodes:
        ax.axvspan(start / 60, end / 60, ymin=0, ymax=1, color=NEUTRAL_COLOUR, alpha=0.12)
        ax.annotate(f"gpu {gpu} slowed", (start / 60, gpus.index(gpu) + 0.35), fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), loc="upper left", fontsize=8)
    ax.set_yticks(range(len(gpus)), [f"gpu {g}" for g in gpus])
    ax.set_xlabel("minutes")
    ax.set_title(title)
    return fig
