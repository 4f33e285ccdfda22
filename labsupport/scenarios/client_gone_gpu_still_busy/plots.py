"""Plots of lab 286: what the engine runs versus who is still connected, per round.

    >>> from labsupport.serving import disconnect_plots, disconnects
    >>> run = disconnects.run_workload(disconnects.naive_stream_outputs, label="no cancel")
    >>> len(disconnect_plots.timeline({"no cancel": run}).axes)
    2

`timeline` draws, for each round, the requests in the engine (running + waiting) and the
streams the HTTP server still serves, sampled from `/debug/heartbeat`; the gap between them is
work for clients that are gone. A second axis shows the KV blocks held.
"""

from __future__ import annotations

from matplotlib.ticker import MaxNLocator

from labsupport import plots

KV_COLOUR = "#1f77b4"


def timeline(runs: dict, *, title: str = "who is the engine working for?"):
    """One panel per round (label -> DisconnectRun), sharing the y axis."""
    fig, axes = plots.figure(width_in=5.0 * len(runs), height_in=3.4, ncols=len(runs))
    axes = list(axes) if len(runs) > 1 else [axes]
    samples = [s for r in runs.values() for s in r.samples]
    top = max((max(s[1] + s[2], s[3]) for s in samples), default=1)
    top_blocks = max((s[4] for s in samples), default=1) or 1
    end_s = max((s[0] for s in samples), default=1.0)
    for ax, (label, run) in zip(axes, runs.items(), strict=True):
        t = [s[0] for s in run.samples]
        engine = [s[1] + s[2] for s in run.samples]
        http = [s[3] for s in run.samples]
        blocks = [s[4] for s in run.samples]
        ax.fill_between(t, http, engine, where=[e > h for e, h in zip(engine, http, strict=True)],
                        step="post", color=plots.BEFORE_COLOUR, alpha=0.25,
                        label="running for nobody")  # fmt: skip
        ax.step(t, engine, where="post", color=plots.BEFORE_COLOUR, label="requests in the engine")
        ax.step(t, http, where="post", color=plots.AFTER_COLOUR, label="streams still connected")
        ax.axvline(run.clients_left_s, color=plots.NEUTRAL_COLOUR, ls="--", lw=1)
        ax.annotate("last client done", (run.clients_left_s, top * 1.02), fontsize=8,
                    color=plots.NEUTRAL_COLOUR)  # fmt: skip
        ax.set_ylim(0, top * 1.15 + 0.5)
        ax.set_xlim(0, end_s)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("seconds since the first request")
        ax.set_title(f"{label}: {run.wasted_steps} steps for nobody", fontsize=10)
        ax.spines[["top"]].set_visible(False)
        kv = ax.twinx()
        kv.plot(t, blocks, color=KV_COLOUR, lw=1, alpha=0.7, label="KV blocks held (right)")
        kv.set_ylim(0, top_blocks * 1.15)
        kv.tick_params(axis="y", labelsize=8, colors=KV_COLOUR)
        kv.spines[["top"]].set_visible(False)
    kv.set_ylabel("KV blocks", color=KV_COLOUR)
    axes[0].set_ylabel("requests")
    lines, labels = axes[0].get_legend_handles_labels()
    more, more_labels = fig.axes[-1].get_legend_handles_labels()
    fig.legend(lines + more, labels + more_labels, fontsize=8, loc="outside lower center", ncols=4)
    fig.suptitle(title)
    return fig
