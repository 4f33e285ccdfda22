"""Shared plot helpers: one look for every lab's headline figure.

>>> from labsupport import plots
>>> fig = plots.before_after({"default": 812.0, "gc.freeze()": 41.0}, unit="ms",
...                          title="p99 TTFT")
>>> len(fig.axes)
1
"""

from __future__ import annotations

BEFORE_COLOUR = "#d62728"
AFTER_COLOUR = "#2ca02c"
NEUTRAL_COLOUR = "#7f7f7f"


def figure(width_in: float = 8.0, height_in: float = 3.5, ncols: int = 1):
    """A figure without touching pyplot's global state (safe in tests and workers)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def before_after(
    values: dict[str, float], *, unit: str, title: str, colours: list[str] | None = None
):
    """Bars for the arms of one run (first = before, last = after), labelled with values."""
    fig, ax = figure(width_in=6.0, height_in=3.2)
    names = list(values)
    default = [BEFORE_COLOUR] + [NEUTRAL_COLOUR] * (len(names) - 2) + [AFTER_COLOUR]
    bars = ax.bar(names, [values[n] for n in names], color=colours or default[: len(names)])
    for bar, name in zip(bars, names, strict=True):
        ax.annotate(
            f"{values[name]:.3g} {unit}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def show(fig, dpi: int = 110):
    """Display a figure in a notebook as a PNG (works without pyplot); elsewhere do nothing.

    Returns the figure, so `plots.show(fig).savefig(...)` also works.
    """
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return fig
    if get_ipython() is None:
        return fig
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    display(Image(buf.getvalue()))
    return fig
