"""Lab 299's figure: every request of a rollout on its pod's lane, with the pods' lifecycles.

    >>> from labsupport.scenarios.errors_during_rollout import plots
    >>> fig = plots.timelines([run_production, run_fixed])          # doctest: +SKIP

One panel per run. Each pod has a band (old pods at the top, new ones below); each request is
a line from its start to its end on its client's lane in the band of the pod that got it,
coloured by outcome. Markers show the pod's lifecycle: deleted (endpoint removed from the
EndpointSlice), the balancer stops routing to it, a lifecycle hook (shaded, when there is one),
SIGTERM, SIGKILL and the exit. The title says what happened; `settings=True` adds the
termination settings of the run.
"""

from __future__ import annotations

from labsupport import plots

OUTCOME_COLOURS = {
    "ok": "#9fbfdf",
    "truncated": plots.BEFORE_COLOUR,
    "http_error": "#ff7f0e",
    "connection_error": "#9467bd",
    "timeout": "#111111",
}
MARKS = (  # attribute, label, colour, line style
    ("deleted_s", "deleted", "#555555", ":"),
    ("endpoint_removed_s", "balancer stops routing", "#1f77b4", "--"),
    ("sigterm_s", "SIGTERM", plots.BEFORE_COLOUR, "-"),
    ("sigkill_s", "SIGKILL", "#000000", "-"),
    ("exited_s", "exited", "#2ca02c", "-"),
)


def _bands(run) -> list[str]:
    pods = sorted(run.pods.values(), key=lambda p: (p.revision != "old", p.created_s or 0))
    names = [p.name for p in pods]
    if any(r.backend is None for r in run.requests):
        names.append("(no pod)")
    return names


def draw(ax, run, *, legend: bool = True, settings: bool = False) -> None:
    bands = _bands(run)
    lanes = max([r.client for r in run.requests] + [0]) + 1
    height = lanes + 1
    for b, name in enumerate(bands):
        top = (len(bands) - b) * height
        pod = run.pods.get(name)
        if pod is not None and pod.pre_stop_s is not None:
            end = pod.sigterm_s if pod.sigterm_s is not None else pod.pre_stop_s
            ax.fill_between(
                [pod.pre_stop_s, end],
                top - height + 0.5,
                top - 0.5,
                color="#dddddd",
                zorder=0,
                label="preStop sleep",
            )
        for attr, label, colour, style in MARKS:
            t = getattr(pod, attr, None) if pod is not None else None
            if t is not None:
                ax.vlines(
                    t,
                    top - height + 0.5,
                    top - 0.5,
                    colors=colour,
                    linestyles=style,
                    linewidth=1.6,
                    label=label,
                    zorder=3,
                )
        for r in run.requests:
            if (r.backend or "(no pod)") != name:
                continue
            y = top - 1 - r.client
            colour = OUTCOME_COLOURS.get(r.status, "#111111")
            if r.status != "ok" and r.end_s - r.start_s < 0.05:  # refused or rejected at once
                marker = "x" if r.status == "connection_error" else "o"
                ax.plot(
                    [r.start_s],
                    [y],
                    marker=marker,
                    markersize=5,
                    color=colour,
                    linestyle="none",
                    label=r.status,
                    zorder=4,
                )
                continue
            width = 1.2 if r.status == "ok" else 3.0
            ax.plot(
                [r.start_s, r.end_s],
                [y, y],
                color=colour,
                linewidth=width,
                solid_capstyle="butt",
                label=r.status,
                zorder=2,
            )
    ticks = [(len(bands) - b) * height - height / 2 for b in range(len(bands))]
    labels = []
    for name in bands:
        pod = run.pods.get(name)
        labels.append(f"{pod.revision}  {name[-5:]}" if pod else name)
    ax.set_yticks(ticks, labels)
    ax.axvline(0, color="#999999", linewidth=0.8)
    title = f"{run.arm}: {len(run.failed)} of {len(run.requests)} requests failed or truncated"
    if settings:
        title += "\n" + run.settings_line().split(": ", 1)[1]
    ax.set_title(title, fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    if legend:
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles, strict=True))
        ax.legend(
            unique.values(),
            unique.keys(),
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            frameon=False,
        )


def timelines(runs: list, width_in: float = 11.0, *, settings: bool = False):
    """One panel per run, stacked, sharing the time axis (`settings`: say them in titles)."""
    from matplotlib.figure import Figure

    heights = [max(2.6, 0.5 * len(_bands(run))) for run in runs]
    fig = Figure(figsize=(width_in, sum(heights) + 0.6), layout="constrained")
    axes = fig.subplots(
        len(runs), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": heights}
    )[:, 0]
    for ax, run in zip(axes, runs, strict=True):
        draw(ax, run, settings=settings)
    axes[-1].set_xlabel("seconds since the rollout started (real time; x10 for manifest seconds)")
    return fig
