"""Lab 277's figures: the card's used memory over a container's life, crash marked.

>>> from labsupport.scenarios.gpu_memory_held_after_crash import plots
>>> fig = plots.card_timeline([("demo", ((0.0, 0), (1.0, 2**27), (2.0, 2**27)), 1.5)],
...                           total_bytes=2**29, title="demo")
>>> len(fig.axes)
1
"""

from __future__ import annotations

from labsupport.plots import AFTER_COLOUR, BEFORE_COLOUR, NEUTRAL_COLOUR, figure

MiB = 2**20
COLOURS = (BEFORE_COLOUR, AFTER_COLOUR, "#1f77b4", "#9467bd")


def card_timeline(series, *, total_bytes: int, title: str):
    """One line per (label, ((t_s, used_bytes), ...), killed_at_s) in MiB, the kill dotted."""
    fig, ax = figure(width_in=8.0, height_in=3.4)
    for i, (label, points, killed_at) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        shift = killed_at or 0.0
        ax.plot([t - shift for t, _ in points], [b / MiB for _, b in points], color=colour,
                lw=1.6, label=label)  # fmt: skip
    ax.axvline(0.0, color=NEUTRAL_COLOUR, ls=":", lw=1)
    ax.axhline(total_bytes / MiB, color=NEUTRAL_COLOUR, ls="--", lw=0.8)
    ax.set_xlabel("seconds from the server's SIGKILL")
    ax.set_ylabel("card memory used (MiB)")
    ax.set_title(title)
    ax.legend(loc="center right", fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig
