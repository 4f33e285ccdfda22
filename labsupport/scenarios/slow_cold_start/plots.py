"""Lab 293's plots: loaders side by side, cold and warm.

>>> from labsupport.scenarios.slow_cold_start import measure, plots
>>> loads = [measure.Load("production", c, t, t / 2, 0, 0, 0.0)
...          for c, t in ((True, 2.0), (False, 1.5))]
>>> len(plots.loaders(loads, title="x").axes)
1
"""

from __future__ import annotations

from labsupport import plots

COLD, WARM = "#1f77b4", "#ff7f0e"


def loaders(loads, *, title: str):
    """Cold and warm wall time per loader, on a log scale (they differ by orders)."""
    names = list(dict.fromkeys(x.loader for x in loads))
    fig, ax = plots.figure(width_in=8.0, height_in=3.4)
    width = 0.38
    arms = ((-width / 2, True, COLD, "cold (page cache dropped)"),
            (width / 2, False, WARM, "warm (just loaded)"))  # fmt: skip
    for offset, cold, colour, label in arms:
        values = [
            next((x.wall_s for x in loads if x.loader == n and x.cold == cold), 0.0) for n in names
        ]
        xs = [i + offset for i in range(len(names))]
        bars = ax.bar(xs, values, width, color=colour, label=label)
        for bar, v in zip(bars, values, strict=True):
            ax.annotate(f"{v:.2g} s", (bar.get_x() + bar.get_width() / 2, v), ha="center",
                        va="bottom", fontsize=8)  # fmt: skip
    ax.set_xticks(range(len(names)), names, fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("seconds until the weights are usable")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig
