"""Plots of lab 286: who is connected at each layer, and what the engine runs, per round.

    >>> from labsupport.scenarios.client_gone_gpu_still_busy import plots
    >>> from labsupport.scenarios.client_gone_gpu_still_busy.rounds import Round, Workload
    >>> r = Round("a", "cpu", Workload(), "close", "", "", "", [], [], [], 0.2, 0.5,
    ...           [(0.1 * i, 4 - i, 0, 2, 3, 1) for i in range(5)])
    >>> len(plots.timeline({"a": r}).axes)
    2

`timeline` draws, for each round, the requests in the engine (running + waiting), the streams
the HTTP server still serves and the clients still connected to the gateway, sampled every
~20 ms; a second axis shows the KV blocks held. It shades nothing and names nothing: reading it
is the exercise.
"""

from __future__ import annotations

from matplotlib.ticker import MaxNLocator

from labsupport import plots

KV_COLOUR = "#1f77b4"
GATEWAY_COLOUR = "#7f7f7f"


def timeline(runs: dict, *, title: str = "who is the engine working for?"):
    """One panel per round (label -> rounds.Round), sharing the y axis and the time scale."""
    fig, axes = plots.figure(width_in=5.0 * len(runs), height_in=3.4, ncols=len(runs))
    axes = list(axes) if len(runs) > 1 else [axes]
    samples = [s for r in runs.values() for s in r.samples]
    top = max((max(s[1] + s[2], s[3], s[5] or 0) for s in samples), default=1)
    top_blocks = max((s[4] for s in samples), default=1) or 1
    end_s = max((s[0] for s in samples), default=1.0)
    kv = None
    for ax, (label, run) in zip(axes, runs.items(), strict=True):
        t = [s[0] for s in run.samples]
        engine = [s[1] + s[2] for s in run.samples]
        server = [s[3] for s in run.samples]
        ax.step(t, engine, where="post", color=plots.BEFORE_COLOUR, label="requests in the engine")
        ax.step(
            t, server, where="post", color=plots.AFTER_COLOUR, label="streams the server serves"
        )
        if any(s[5] is not None for s in run.samples):
            clients = [s[5] or 0 for s in run.samples]
            ax.step(t, clients, where="post", color=GATEWAY_COLOUR, ls=":",
                    label="clients connected to the gateway")  # fmt: skip
        ax.axvline(run.clients_left_s, color=plots.NEUTRAL_COLOUR, ls="--", lw=1)
        ax.annotate("last client done", (run.clients_left_s, top * 1.02), fontsize=8,
                    color=plots.NEUTRAL_COLOUR)  # fmt: skip
        ax.set_ylim(0, top * 1.15 + 0.5)
        ax.set_xlim(0, end_s)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("seconds since the first request")
        ax.set_title(label, fontsize=10)
        ax.spines[["top"]].set_visible(False)
        kv = ax.twinx()
        kv.plot(t, [s[4] for s in run.samples], color=KV_COLOUR, lw=1, alpha=0.7,
                label="KV blocks held (right)")  # fmt: skip
        kv.set_ylim(0, top_blocks * 1.15)
        kv.tick_params(axis="y", labelsize=8, colors=KV_COLOUR)
        kv.spines[["top"]].set_visible(False)
    kv.set_ylabel("KV blocks", color=KV_COLOUR)
    axes[0].set_ylabel("requests / connections")
    lines, labels = [], []
    for ax in axes:  # every series once, whichever panel has it
        for line, text in zip(*ax.get_legend_handles_labels(), strict=True):
            if text not in labels:
                lines.append(line)
                labels.append(text)
    more, more_labels = fig.axes[-1].get_legend_handles_labels()
    fig.legend(lines + more, labels + more_labels, fontsize=8, loc="outside lower center", ncols=4)
    fig.suptitle(title)
    return fig
