"""Plots of lab 290's arms: TTFT over time with the full collections shaded, memory per arm.

    >>> from labsupport import gc_pauses, gc_plots        # doctest: +SKIP
    >>> arm = gc_pauses.run_arm("default")                 # doctest: +SKIP
    >>> fig = gc_plots.timeline(arm)                       # doctest: +SKIP

Figures are built without pyplot (`labsupport.plots.figure`); show them with `plots.show`.
"""

from __future__ import annotations

from labsupport import plots
from labsupport.gc_pauses import ArmResult, Comparison


def timeline(arm: ArmResult, *, ax=None, title: str | None = None):
    """Each request's TTFT at its arrival time, with generation-2 pauses shaded."""
    fig, ax = plots.figure(9.0, 3.2) if ax is None else (ax.figure, ax)
    for i, p in enumerate(arm.gen2_pauses):
        label = "gen-2 collection" if i == 0 else None
        ax.axvspan(p.start_s, p.end_s, color=plots.BEFORE_COLOUR, alpha=0.25, lw=0, label=label)
    arrivals = [r.arrival_s for r in arm.requests]
    ax.scatter(arrivals, arm.ttft_ms, s=3, color=plots.NEUTRAL_COLOUR, label="request TTFT")
    ax.axhline(arm.p99_ttft_ms, color="black", ls="--", lw=1, label=f"p99 {arm.p99_ttft_ms:.0f} ms")
    ax.set_yscale("log")
    ax.set_xlabel("arrival time (s)")
    ax.set_ylabel("TTFT (ms)")
    ax.set_title(title or f"{arm.arm}: {len(arm.gen2_pauses)} gen-2 pauses ({arm.device})")
    ax.legend(loc="upper right", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def comparison(result: Comparison):
    """One timeline per arm on a shared TTFT axis, then live request objects over time."""
    from matplotlib.figure import Figure

    arms = list(result.arms.values())
    fig = Figure(figsize=(9.0, 2.3 * (len(arms) + 1)), layout="constrained")
    grid = fig.subplots(len(arms) + 1, 1, sharex=True)
    top_ms = max(float(a.ttft_ms.max()) for a in arms)
    for ax, arm in zip(grid[:-1], arms, strict=True):
        timeline(arm, ax=ax)
        ax.set_xlabel("")
        ax.set_ylim(1.0, top_ms * 1.5)
    ax = grid[-1]
    for arm in arms:
        ax.plot(arm.samples.t_s, arm.samples.live_requests, label=arm.arm)
    ax.set_xlabel("time in the measured window (s)")
    ax.set_ylabel("live request objects")
    ax.legend(fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig
