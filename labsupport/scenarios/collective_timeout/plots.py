"""Lab 297's plots: each rank of a job over time, and two jobs side by side.

>>> from labsupport.distributed.launch import JobRun, RankRun
>>> from labsupport.scenarios.collective_timeout import plots
>>> r = RankRun(0, None, True, 9.0, "run", None, "", None, [], None,
...             [(1.0, {"step": 0}), (1.1, {"step": 1})], "")
>>> run = JobRun(2, 30.0, None, 9.0, True, False, {}, [r, r])
>>> len(plots.timeline(run, title="a job").axes)
1
"""

from __future__ import annotations

from labsupport import plots
from labsupport.distributed.launch import JobRun

STEP, CHECKPOINT, SILENT, DUMP, EXIT = "#1f77b4", "#9467bd", "#d62728", "#2ca02c", "#222222"


def _draw(ax, run: JobRun, title: str) -> None:
    for r in run.ranks:
        y = r.rank
        steps = [t for t, p in r.progress if "step" in p]
        saves = [t for t, p in r.progress if "checkpoint" in p]
        ax.scatter(steps, [y] * len(steps), marker="|", s=160, color=STEP, zorder=3)
        ax.scatter(saves, [y] * len(saves), marker="s", s=40, color=CHECKPOINT, zorder=3)
        last = max(steps) if steps else 0.0
        end = r.ended_s if r.ended_s is not None else run.duration_s
        ax.hlines(y, last, end, color=SILENT, linewidth=6, alpha=0.35, zorder=2)
        if r.dumped:
            ax.scatter([r.trace_s], [y], marker="o", s=70, color=DUMP, zorder=4)
        ax.scatter([end], [y], marker="x" if r.killed else "v", s=80, color=EXIT, zorder=4)
    ax.set_yticks([r.rank for r in run.ranks], [f"rank {r.rank}" for r in run.ranks])
    ax.set_ylim(-0.6, run.world_size - 0.4)
    ax.set_xlabel("seconds since launch")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)


def _legend(fig) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="|", linestyle="", color=STEP, markersize=12, label="step done"),
        Line2D([], [], marker="s", linestyle="", color=CHECKPOINT, label="checkpoint (rank 0)"),
        Line2D([], [], color=SILENT, alpha=0.35, linewidth=6, label="nothing reported"),
        Line2D([], [], marker="o", linestyle="", color=DUMP, label="flight recorder dumped"),
        Line2D([], [], marker="v", linestyle="", color=EXIT, label="exited by itself"),
        Line2D([], [], marker="x", linestyle="", color=EXIT, label="killed by the launcher"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)


def timeline(run: JobRun, *, title: str):
    """One row per rank: its steps, checkpoints, the silence after its last step, its end."""
    fig, ax = plots.figure(width_in=8.0, height_in=2.6)
    _draw(ax, run, title)
    _legend(fig)
    return fig


def comparison(before: JobRun, after: JobRun, *, titles: tuple[str, str]):
    """Two jobs one above the other, on the same time axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.6), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for ax, run, title in zip(axes, (before, after), titles, strict=True):
        _draw(ax, run, title)
    _legend(fig)
    return fig
