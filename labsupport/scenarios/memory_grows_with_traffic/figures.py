"""Plots of lab 294's runs: memory reserved and latency request by request, before and after.

    >>> from labsupport.scenarios.memory_grows_with_traffic import figures   # doctest: +SKIP
    >>> fig = figures.timeline(run)                                         # doctest: +SKIP
    >>> fig = figures.timeline(run, by_path=True)       # after the diagnosis  # doctest: +SKIP
    >>> fig = figures.comparison(deployed, fixed)                           # doctest: +SKIP

Figures are built without pyplot (`labsupport.plots.figure`); show them with `plots.show`.
`timeline` draws every request alike unless `by_path` colours them by what ran (a compile, a
recording, a replay, eager code): that is the answer, so the notebook asks for it only after
the diagnosis.
"""

from __future__ import annotations

from labsupport import plots
from labsupport.scenarios.memory_grows_with_traffic.server import MiB, Run

PATH_COLOURS = {"compile": "#d62728", "record": "#ff7f0e", "replay": "#2ca02c", "eager": "#1f77b4"}


def timeline(run: Run, *, by_path: bool = False, title: str | None = None):
    """Memory reserved after each request (top) and each request's latency (bottom, log)."""
    fig, (mem, lat) = _two_rows()
    index = [r.index for r in run.requests]
    mem.step(
        [-1, *index],
        [run.warmed_reserved_bytes / MiB, *(r.reserved_bytes / MiB for r in run.requests)],
        where="post",
        color="black",
    )
    mem.set_ylabel("memory reserved (MiB)")
    mem.set_title(title or f"{run.arm} server, {len(index)} requests ({run.device})")
    if by_path:
        for path, colour in PATH_COLOURS.items():
            picked = [r for r in run.requests if r.path == path]
            if picked:
                lat.scatter(
                    [r.index for r in picked], [r.latency_ms for r in picked], s=9,
                    color=colour, label=f"{path} ({len(picked)})",
                )  # fmt: skip
        lat.legend(loc="upper right", fontsize=8)
    else:
        lat.scatter(index, [r.latency_ms for r in run.requests], s=9, color=plots.NEUTRAL_COLOUR)
    lat.set_yscale("log")
    lat.set_xlabel("request")
    lat.set_ylabel("latency (ms)")
    for ax in (mem, lat):
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def _two_rows():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 5.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    return fig, (top, bottom)


def comparison(before: Run, after: Run):
    """Memory reserved by the model's graphs, and p99 latency, as deployed vs fixed."""
    import numpy as np

    fig, (mem, lat) = plots.figure(9.0, 3.2, ncols=2)
    names = ["as deployed", "fixed"]
    grown = [(r.final_reserved_bytes - r.baseline_reserved_bytes) / MiB for r in (before, after)]
    p99 = [float(np.percentile([q.latency_ms for q in r.requests], 99)) for r in (before, after)]
    for ax, values, unit, what in (
        (mem, grown, "MiB", "memory reserved beyond the weights"),
        (lat, p99, "ms", "p99 latency of the traffic"),
    ):
        bars = ax.bar(names, values, color=[plots.BEFORE_COLOUR, plots.AFTER_COLOUR])
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(f"{value:.3g} {unit}", (bar.get_x() + bar.get_width() / 2, value),
                        ha="center", va="bottom", fontsize=9)  # fmt: skip
        ax.set_title(what)
        ax.set_ylabel(unit)
        ax.spines[["top", "right"]].set_visible(False)
    return fig
