"""Plots of lab 278: the probe matrix as a heatmap, a pod's timeline, designs side by side.

    >>> from labsupport.scenarios.port_open_but_not_serving import plots
    >>> from labsupport.scenarios.port_open_but_not_serving.timeline import View
    >>> fig = plots.bands({"tcpSocket": View([(0.0, False), (1.0, True)], [])}, t_end_s=5.0,
    ...                   marks={"fault": 2.0})
    >>> len(fig.axes)
    1

Green: Ready (in the Service); grey: not Ready; a red line: the container was killed by a
failed liveness probe (restarted). Figures are built without pyplot (`labsupport.plots`).
"""

from __future__ import annotations

import numpy as np

from labsupport import plots
from labsupport.scenarios.port_open_but_not_serving.timeline import FAULTS, LABELS, View

READY, NOT_READY, KILL = plots.AFTER_COLOUR, "#c7c7c7", plots.BEFORE_COLOUR


def heatmap(matrix, title: str = "which probe fails where (share of probes that failed)"):
    """Rows: probes; columns: scenarios; colour: failure rate (green 0 %, red 100 %)."""
    from labsupport.scenarios.port_open_but_not_serving.matrix import LABELS as COLUMNS

    rates = np.array(matrix.rates(), dtype=float)
    fig, ax = plots.figure(width_in=1.3 * len(matrix.situations) + 2.6,
                           height_in=0.48 * len(matrix.probes) + 1.4)  # fmt: skip
    ax.imshow(rates, cmap="RdYlGn_r", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(matrix.situations)), [COLUMNS[s] for s in matrix.situations])
    ax.set_yticks(range(len(matrix.probes)), matrix.probes)
    ax.tick_params(axis="x", labelrotation=20)
    for i, row in enumerate(rates):
        for j, r in enumerate(row):
            text = "pass" if r == 0 else f"fail {r:.0%}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if 0.2 < r < 0.8 or r >= 0.8 else "black")  # fmt: skip
    ax.set_title(title)
    return fig


def _band(ax, y: float, view: View, t_end_s: float, height: float = 0.6) -> None:
    changes = [(t, r) for t, r in view.ready if t <= t_end_s]  # none yet: not drawn
    for (t, ready), (t_next, _) in zip(changes, [*changes[1:], (t_end_s, None)], strict=True):
        if t_next > t:
            ax.broken_barh([(t, t_next - t)], (y - height / 2, height),
                           color=READY if ready else NOT_READY)  # fmt: skip
    for t in view.kills:
        if t <= t_end_s:
            ax.plot([t, t], [y - height / 2 - 0.1, y + height / 2 + 0.1], color=KILL, lw=2.5)


def bands(views: dict, *, t_end_s: float, marks: dict | None = None, ax=None, title: str = ""):
    """One horizontal band per view (label -> View); marks: label -> time (a dashed line)."""
    fig = None
    if ax is None:
        fig, ax = plots.figure(width_in=8.0, height_in=0.55 * len(views) + 1.2)
    for i, view in enumerate(views.values()):
        _band(ax, len(views) - 1 - i, view, t_end_s)
    ax.set_yticks(range(len(views)), list(views)[::-1])
    for label, t in (marks or {}).items():
        ax.axvline(t, color="black", ls="--", lw=1)
        ax.annotate(label, (t, len(views) - 0.45), fontsize=8, ha="left", xytext=(3, 0),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlim(0, t_end_s)
    ax.set_ylim(-0.6, len(views) - 0.2)
    ax.set_xlabel("seconds since the pod was created")
    ax.spines[["top", "right", "left"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig if fig is not None else ax.figure


def pod_timeline(run, title: str = ""):
    """The pod's Ready band and restarts (and its shadows), over its light traffic."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.4])
    done = [t + d for t, d, _, _ in run.requests if d < float("inf")]
    t_end = max([0.0, *(b for _, b in run.phases.values()), *done])
    marks = {("fault on" if p == "fault" else p.replace("_", " ")): a
             for p, (a, _) in run.phases.items() if p not in ("healthy", "drain")}  # fmt: skip
    views = {f"pod ({n.split(':')[0]})" if n == run.probes else f"shadow: {n.split(':')[0]}": v
             for n, v in run.views.items()}  # fmt: skip
    bands(views, t_end_s=t_end, marks=marks, ax=top, title=title)
    top.set_xlabel("")
    ok = [(t, d) for t, d, s, _ in run.requests if s == "ok"]
    bad = [(t, d, s) for t, d, s, _ in run.requests if s not in ("ok", "http_429")]
    shed = [t for t, _, s, _ in run.requests if s == "http_429"]
    if ok:
        bottom.scatter(*zip(*ok, strict=True), s=10, color=READY, label="served")
    if bad:
        bottom.scatter([t for t, _, _ in bad], [d for _, d, _ in bad], s=16, marker="x",
                       color=KILL, label="failed (timeout, reset, cancelled)")  # fmt: skip
    if shed:
        bottom.scatter(shed, [0.0] * len(shed), s=6, marker="|", color=plots.NEUTRAL_COLOUR,
                       label="shed at the gateway (429)")  # fmt: skip
    bottom.set_ylabel("request latency (s)")
    bottom.set_xlabel("seconds since the pod was created (request start)")
    bottom.legend(loc="upper left", fontsize=8, frameon=False)
    bottom.spines[["top", "right"]].set_visible(False)
    return fig


def comparison(result):
    """Left: scenarios handled per design. Right: seconds from fault to restart, per fault."""
    fig, (left, right) = plots.figure(width_in=10.0, height_in=3.4, ncols=2)
    designs = list(result.scorecards)
    counts = [result.handled(d) for d in designs]
    colours = [plots.BEFORE_COLOUR, plots.NEUTRAL_COLOUR, plots.AFTER_COLOUR][: len(designs)]
    bars = left.bar(designs, counts, color=colours)
    total = len(next(iter(result.scorecards.values())))
    for bar, n in zip(bars, counts, strict=True):
        left.annotate(f"{n} of {total}", (bar.get_x() + bar.get_width() / 2, n), ha="center",
                      va="bottom", fontsize=9)  # fmt: skip
    left.set_ylim(0, total + 0.8)
    left.set_title("scenarios handled right")
    faults = [f for f in FAULTS if f in result.scorecards[designs[0]]]
    x = np.arange(len(faults))
    width = 0.8 / len(designs)
    window = result.fault_window_s
    for k, (design, colour) in enumerate(zip(designs, colours, strict=True)):
        times = result.detection_s(design)
        for i, f in enumerate(faults):
            t = times.get(f)
            pos = x[i] + (k - (len(designs) - 1) / 2) * width
            if t is None:
                right.bar(pos, window, width, color="white", edgecolor=colour, hatch="//")
                right.annotate("never", (pos, window), ha="center", va="bottom", fontsize=8)
            else:
                right.bar(pos, t, width, color=colour, label=None)
                right.annotate(f"{t:.1f}", (pos, t), ha="center", va="bottom", fontsize=8)
    right.set_ylim(0, window * 1.35)
    right.set_xticks(x, [LABELS[f] for f in faults], fontsize=8)
    right.set_ylabel("seconds to restart")
    right.set_title(f"fault -> liveness restart (hatched: not within {window:.0f} s)")
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
    handles = [_patch(c, d) for d, c in zip(designs, colours, strict=True)]
    right.legend(handles=handles, fontsize=8, frameon=False, loc="upper center", ncol=3)
    return fig


def _patch(colour: str, label: str):
    from matplotlib.patches import Patch

    return Patch(color=colour, label=label)
