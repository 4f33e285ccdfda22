"""Lab 285's figures: every call of a replay over time, and the probes beside them.

    >>> from labsupport.scenarios.device_side_assert import plots as figures
    >>> fig = figures.timeline(run, title="the incident")            # doctest: +SKIP

One row per call (sent -> answered), coloured by what it got: served, refused (4xx), failed
(5xx or an error inside a 200 stream); below, one row per probed path, coloured by status.
Figures are built without pyplot (`labsupport.plots.figure`); show them with `plots.show`.
"""

from __future__ import annotations

from labsupport import plots
from labsupport.scenarios.device_side_assert.runs import Run

SERVED = plots.AFTER_COLOUR
FAILED = plots.BEFORE_COLOUR
REFUSED = "#ff7f0e"


def _colour(outcome) -> str:
    if outcome.served:
        return SERVED
    if 400 <= outcome.status < 500:
        return REFUSED
    return FAILED


def timeline(run: Run, *, title: str = "", ax=None):
    """Calls as bars (sent to answered), probes as dots, on one time axis."""
    fig = None
    if ax is None:
        fig, ax = plots.figure(width_in=9.0, height_in=4.2)
    paths = sorted({p.path for p in run.probes})
    n = len(run.outcomes)
    for row, o in enumerate(run.outcomes):
        y = n - row + len(paths)
        ax.plot([o.sent_s, max(o.done_s, o.sent_s + 0.02)], [y, y], color=_colour(o), lw=4,
                solid_capstyle="butt")  # fmt: skip
    for row, path in enumerate(paths):
        series = run.probe_series(path)
        colours = [SERVED if p.status == 200 else FAILED for p in series]
        ax.scatter([p.t_s for p in series], [row + 0.5] * len(series), c=colours, s=10)
    ticks = [row + 0.5 for row in range(len(paths))] + [n - i + len(paths) for i in range(n)]
    labels = [f"GET {p}" for p in paths] + [o.id for o in run.outcomes]
    ax.set_yticks(ticks, labels, fontsize=6)
    ax.set_xlabel("seconds since the first call")
    for colour, label in ((SERVED, "served / 200"), (REFUSED, "refused (4xx)"),
                          (FAILED, "failed / not 200")):  # fmt: skip
        ax.plot([], [], color=colour, lw=4, label=label)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    ax.set_title(title or "calls and probes")
    ax.spines[["top", "right"]].set_visible(False)
    return fig if fig is not None else ax.figure
