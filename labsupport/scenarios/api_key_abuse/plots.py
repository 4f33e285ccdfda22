"""Plots of lab 291: every request's time to first token, and the engine, over a round.

    >>> from labsupport.scenarios.api_key_abuse import plots
    >>> from labsupport.scenarios.api_key_abuse.stack import Round
    >>> from labsupport.gateway.clients import ClientResult
    >>> r = ClientResult("sk-a", "sk-a", 200, "ok", 0.5, 0.03, 0.4, 12, 12, 20)
    >>> rnd = Round("busy", "as deployed", 2.0, [r], [], "", "", [(0.1, 1, 0, 0.1, 0)])
    >>> len(plots.rounds({"busy": rnd}).axes)
    2

`rounds` draws one panel per round: each request as a point at its start, its height the time
to its first token (a request that got none by the end sits at the time it waited, hollow);
the engine's KV cache use on a second axis. Every key looks the same: telling them apart is the
exercise. `streams_by_key` (for after the diagnosis) draws each key's responses as bars in time.
"""

from __future__ import annotations

from labsupport import plots

KV_COLOUR = "#1f77b4"


def rounds(runs: dict, *, title: str = "time to first token, every customer"):
    """One panel per round (label -> stack.Round), same axes."""
    fig, axes = plots.figure(width_in=4.8 * len(runs), height_in=3.4, ncols=len(runs))
    axes = list(axes) if len(runs) > 1 else [axes]
    top = 0.05
    for r in (r for rnd in runs.values() for r in rnd.results):
        top = max(top, r.ttft_s if r.ttft_s is not None else r.e2e_s)
    kv = None
    for ax, (label, rnd) in zip(axes, runs.items(), strict=True):
        got = [r for r in rnd.results if r.ttft_s is not None]
        none = [r for r in rnd.results if r.ttft_s is None and r.status in (0, 200)]
        ax.scatter([r.start_s for r in got], [r.ttft_s for r in got], s=10,
                   color=plots.BEFORE_COLOUR, label="first token after (s)")  # fmt: skip
        if none:
            ax.scatter([r.start_s for r in none], [r.e2e_s for r in none], s=14,
                       facecolors="none", edgecolors=plots.BEFORE_COLOUR,
                       label="no token yet, waited (s)")  # fmt: skip
        ax.set_ylim(0, top * 1.1)
        ax.set_xlabel("seconds into the round")
        ax.set_title(f"{label} ({rnd.scripts})", fontsize=10)
        kv = ax.twinx()
        kv.plot([s[0] for s in rnd.samples], [s[3] for s in rnd.samples], color=KV_COLOUR,
                lw=1, alpha=0.7, label="KV cache use (right)")  # fmt: skip
        kv.set_ylim(0, 1.05)
        kv.tick_params(axis="y", labelsize=8, colors=KV_COLOUR)
    axes[0].set_ylabel("seconds")
    handles, labels = axes[0].get_legend_handles_labels()
    more, more_labels = kv.get_legend_handles_labels()
    fig.legend(handles + more, labels + more_labels, fontsize=8, loc="outside lower center",
               ncols=3)  # fmt: skip
    fig.suptitle(title)
    return fig


def streams_by_key(rnd, *, highlight: str | None = None, title: str = "responses by key"):
    """Each admitted response as a bar from its start to its end, one row per key."""
    keys = sorted({e["key"] for e in rnd.log})
    fig, ax = plots.figure(width_in=7.0, height_in=0.5 * len(keys) + 1.2)
    for row, key in enumerate(keys):
        colour = plots.BEFORE_COLOUR if key == highlight else plots.NEUTRAL_COLOUR
        for e in (e for e in rnd.log if e["key"] == key and e["status"] == 200):
            ax.plot([e["start_s"], e["end_s"]], [row, row], color=colour, lw=4, alpha=0.35)
    ax.set_yticks(range(len(keys)), keys, fontsize=8)
    ax.set_xlabel("seconds into the round")
    ax.set_title(title, fontsize=10)
    return fig
