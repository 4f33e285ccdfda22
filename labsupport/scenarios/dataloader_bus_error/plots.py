"""Lab 284's figures: /dev/shm in use over a run, against the room it had.

>>> from labsupport.scenarios.dataloader_bus_error import plots
>>> from labsupport.scenarios.dataloader_bus_error.runs import LoaderRun
>>> from labsupport.scenarios.dataloader_bus_error.loader import LoaderConfig, Pace
>>> cfg = LoaderConfig((3, 8, 8), "uint8", 2, 1, 1)
>>> run = LoaderRun("demo", cfg, 2**20, 4, 4, 0.0, 0.1, None, None, 0, (),
...                 ((0.0, 0), (0.05, 4096)), 4096, "root", Pace())
>>> len(plots.usage([run], title="demo").axes)
1
"""

from __future__ import annotations

from labsupport.plots import AFTER_COLOUR, BEFORE_COLOUR, NEUTRAL_COLOUR, figure

MiB = 2**20
COLOURS = (BEFORE_COLOUR, "#1f77b4", AFTER_COLOUR, "#9467bd", "#ff7f0e")


def usage(runs, *, title: str):
    """Used /dev/shm (MiB) over each run's time, its room dashed, a cross where it died."""
    fig, ax = figure(width_in=8.0, height_in=3.6)
    for i, run in enumerate(runs):
        colour = COLOURS[i % len(COLOURS)]
        ts = [t for t, _ in run.timeline]
        used = [b / MiB for _, b in run.timeline]
        ax.plot(ts, used, color=colour, lw=1.6, label=run.arm)
        ax.axhline(run.room_bytes / MiB, color=colour, ls="--", lw=0.9, alpha=0.7)
        if not run.completed and ts:
            ax.plot([ts[-1]], [used[-1]], "x", color=colour, ms=10, mew=2.5)
    ax.set_xlabel("seconds since the loader started")
    ax.set_ylabel("/dev/shm used (MiB)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    ax.annotate("dashed: the size of /dev/shm  x: the job died", (0.01, 0.97),
                xycoords="axes fraction", va="top", fontsize=8, color=NEUTRAL_COLOUR)  # fmt: skip
    return fig
