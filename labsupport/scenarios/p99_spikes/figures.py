"""Plots of lab 290's runs: TTFT over time, the server's three logs on one time axis, before/after.

    >>> from labsupport.scenarios.p99_spikes import figures   # doctest: +SKIP
    >>> fig = figures.timeline(run)                            # doctest: +SKIP
    >>> fig = figures.logs(run)                                # doctest: +SKIP

Figures are built without pyplot (`labsupport.plots.figure`); show them with `plots.show`.
Every log is drawn the same way (a span per entry of 20 ms or more), so the picture does not
favour one explanation.
"""

from __future__ import annotations

from labsupport import plots
from labsupport.scenarios.p99_spikes.records import STALL_MS, Run

LOGS = (
    ("steps", "engine steps"),
    ("collections", "gc.callbacks"),
    ("slow_callbacks", "asyncio slow callbacks"),
)


def timeline(run: Run, *, ax=None, title: str | None = None):
    """Each request's TTFT at its arrival time (log scale), with the p99."""
    fig, ax = plots.figure(9.0, 3.0) if ax is None else (ax.figure, ax)
    arrivals = [r.arrival_s for r in run.requests]
    ax.scatter(arrivals, run.ttft_ms, s=3, color=plots.NEUTRAL_COLOUR, label="request TTFT")
    ax.axhline(run.p99_ttft_ms, color="black", ls="--", lw=1, label=f"p99 {run.p99_ttft_ms:.0f} ms")
    ax.set_yscale("log")
    ax.set_xlabel("arrival time (s)")
    ax.set_ylabel("TTFT (ms)")
    ax.set_title(title or f"{run.arm}: TTFT of each request at its arrival ({run.device})")
    ax.legend(loc="upper right", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def logs(run: Run, *, min_ms: float = STALL_MS):
    """TTFT on top, then one row per log: a span for each entry lasting min_ms or more."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 5.2), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True, height_ratios=[3, 1, 1, 1])
    timeline(run, ax=axes[0], title=f"{run.arm}: TTFT and the server's logs ({run.device})")
    axes[0].set_xlabel("")
    for ax, (name, label) in zip(axes[1:], LOGS, strict=True):
        for entry in getattr(run, name):
            if entry.duration_ms >= min_ms:
                ax.axvspan(entry.start_s, entry.end_s, color=plots.BEFORE_COLOUR, alpha=0.6, lw=0)
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        ax.spines[["top", "right", "left"]].set_visible(False)
    axes[-1].set_xlabel(f"time in the measured window (s); spans: entries of {min_ms:g} ms or more")
    return fig


def comparison(default: Run, fixed: Run):
    """The two arms' timelines on a shared TTFT axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 5.0), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    top = max(float(default.ttft_ms.max()), float(fixed.ttft_ms.max()))
    for ax, run in zip(axes, (default, fixed), strict=True):
        timeline(run, ax=ax)
        ax.set_ylim(1.0, top * 1.5)
    axes[0].set_xlabel("")
    return fig
