"""Plots of lab 288's pods: each container's load, the probes that failed, kills, readiness.

    >>> from labsupport.scenarios.killed_while_loading import pods, starts, timeline
    >>> run = pods.run_pod(starts.incident_manifest(), window_s=8)   # doctest: +SKIP
    >>> fig = timeline.timeline(run)                                 # doctest: +SKIP

Figures are built without pyplot (`labsupport.plots.figure`); show them with `plots.show`. A
row of probe failures appears only for the probes the pod's events mention.
"""

from __future__ import annotations

from labsupport import plots
from labsupport.scenarios.killed_while_loading.pods import Comparison, PodRun

LOADING = "#ff7f0e"
SERVING = plots.AFTER_COLOUR
KILL = plots.BEFORE_COLOUR
HANG = "#9467bd"
# The server's `startup {...}` phases, in the order they run, with what they stand for.
PHASES = [
    ("init_s", "Python + torch import, device init", "#c7c7c7"),
    ("generate_s", "weights written (download)", "#fdae6b"),
    ("read_s", "weights read", "#e6550d"),
    ("to_device_s", "to device", "#a63603"),
    ("warmup_s", "warm-up", "#8c6d31"),
    ("slow_start_s", "compile + graph capture (stand-in)", "#bd9e39"),
]
EDGE = {"edgecolor": "white", "linewidth": 1.5}  # restarts back to back stay apart
ROWS = {"container": 3.0, "Startup": 2.0, "Liveness": 1.0, "Readiness": 0.0}


def _phase_spans(run_start_s: float, port_open_s: float, phases: dict) -> list[tuple]:
    """(start, width, label, colour) of each load phase; init is what the server's timers miss."""
    timed = sum(phases.get(key, 0.0) for key, _, _ in PHASES[1:])
    init = max(0.0, port_open_s - run_start_s - timed)
    spans, t = [], run_start_s
    for key, label, colour in PHASES:
        width = init if key == "init_s" else phases.get(key, 0.0)
        if width > 0:
            spans.append((t, width, label, colour))
            t += width
    return spans


def _mentioned(run: PodRun, kind: str) -> bool:
    return any(f"{kind} probe" in message for _, _, _, message in run.events)


def timeline(run: PodRun, *, ax=None, title: str | None = None):
    """One pod over time: container runs (load phases when known), probe failures, kills."""
    fig, ax = plots.figure(9.0, 3.0) if ax is None else (ax.figure, ax)
    end = run.window_s
    y, h = ROWS["container"], 0.6
    labelled: set[str] = set()

    def once(label: str) -> str | None:
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for c in run.containers:
        stop = c.end_s if c.end_s is not None else end
        opened = c.port_open_s if c.port_open_s is not None else stop
        if c.phases and c.port_open_s is not None:
            for start, width, label, colour in _phase_spans(c.start_s, c.port_open_s, c.phases):
                ax.broken_barh(
                    [(start, width)], (y - h / 2, h), color=colour, label=once(label), **EDGE
                )
        else:
            label = once("loading (port closed)")
            ax.broken_barh(
                [(c.start_s, opened - c.start_s)],
                (y - h / 2, h),
                color=LOADING,
                label=label,
                **EDGE,
            )
        if c.port_open_s is not None:
            ax.broken_barh(
                [(opened, stop - opened)],
                (y - h / 2, h),
                color=SERVING,
                label=once("serving"),
                **EDGE,
            )
        if c.killed_by is not None:
            kill_t = next((t for t in run.event_times("Killing", "failed") if t >= c.start_s), stop)
            ax.axvline(kill_t, color=KILL, lw=1, alpha=0.7)
            ax.scatter(
                [kill_t],
                [y + h / 2 + 0.15],
                marker="v",
                color=KILL,
                zorder=3,
                label=once(f"killed ({c.killed_by} probe)"),
            )
    for t in run.event_times("BackOff"):
        ax.annotate("BackOff", (t, y - h / 2 - 0.1), fontsize=7, color=KILL, va="top")
    for kind, colour in (("Startup", LOADING), ("Liveness", KILL), ("Readiness", "#1f77b4")):
        times = run.probe_failures(kind)
        ax.scatter(times, [ROWS[kind]] * len(times), marker="x", s=18, color=colour, lw=1)
    if run.ready_s is not None:
        ax.axvline(run.ready_s, color=SERVING, ls="--", lw=1.2)
        ax.annotate(" Ready", (run.ready_s, ROWS["Startup"] + 0.5), fontsize=8, color=SERVING)
    if run.hang_s is not None:
        ax.axvline(run.hang_s, color=HANG, ls=":", lw=1.2)
        ax.annotate(" hang", (run.hang_s, ROWS["Liveness"] + 0.4), fontsize=8, color=HANG)
    kinds = [k for k in ("Startup", "Liveness", "Readiness") if _mentioned(run, k)]
    ax.set_yticks([ROWS["container"], *(ROWS[k] for k in kinds)])
    ax.set_yticklabels(["container", *(f"{k.lower()} fails" for k in kinds)])
    ax.set_ylim(-0.6, 3.9)
    ax.set_xlim(0, end)
    ax.set_xlabel("real seconds since the pod was created")
    top = ax.secondary_xaxis(
        "top", functions=(lambda s: s / run.time_scale, lambda s: s * run.time_scale)
    )
    top.set_xlabel("cluster (manifest) seconds", fontsize=8)
    ax.set_title(title or run.headline(), fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.spines[["right"]].set_visible(False)
    return fig


def comparison(result: Comparison):
    """The incident's pod above the fixed one, on one time axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 5.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    end = max(result.before.window_s, result.after.window_s)
    for ax, run, label in (
        (top, result.before, "liveness only"),
        (bottom, result.after, "startupProbe + liveness"),
    ):
        title = f"{label}: {run.headline()}"
        timeline(run, ax=ax, title=title)
        ax.set_xlim(0, end)
    top.set_xlabel("")
    return fig
