"""Plots of lab 292's runs: the on-call dashboard (CPU, device, the loop) and before/after.

    >>> from labsupport.scenarios.cpu_pegged_gpu_idle import figures   # doctest: +SKIP
    >>> fig = figures.dashboard(run)                                   # doctest: +SKIP

Figures are built without pyplot (`labsupport.plots.figure`); show them with `plots.show`.
"""

from __future__ import annotations

from labsupport import plots
from labsupport.scenarios.cpu_pegged_gpu_idle.records import Run


def dashboard(run: Run, *, axes=None, title: str | None = None):
    """Three rows on one time axis: the process's CPU and the device's busy share (100 ms
    bins), the loop's lag, and each request's time to first token (crosses: answered 400)."""
    if axes is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9.0, 6.0), layout="constrained")
        axes = fig.subplots(3, 1, sharex=True)
    else:
        fig = axes[0].figure
    cpu, lag, ttft = axes
    cpu.step(run.bin_t_s, 100 * run.cpu_frac, where="post", color=plots.BEFORE_COLOUR,
             label="process CPU (% of one core)")  # fmt: skip
    cpu.step(run.bin_t_s, 100 * run.busy_frac, where="post", color=plots.AFTER_COLOUR,
             label="device busy (%)")  # fmt: skip
    cpu.set_ylim(0, 110)
    cpu.legend(loc="upper right", fontsize=8)
    cpu.set_title(title or f"{run.arm} ({run.device})")
    lag.plot(run.lag_t_s, run.lag_ms, color=plots.NEUTRAL_COLOUR, lw=1)
    lag.set_ylabel("loop lag (ms)")
    lag.set_yscale("symlog", linthresh=10)
    for r in run.requests:
        served = r.status == 200
        y = r.ttft_ms if served else (r.finish_s - r.arrival_s) * 1e3
        ttft.scatter([r.arrival_s], [max(y, 0.1)], s=8 if r.role == "chat" else 40,
                     marker="o" if served else "x",
                     color=plots.NEUTRAL_COLOUR if r.role == "chat" else "black")  # fmt: skip
    ttft.set_yscale("log")
    ttft.set_ylabel("TTFT / answer (ms)")
    ttft.set_xlabel("time in the window (s)")
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def comparison(shipped: Run, fixed: Run):
    """The loop's lag of both arms on the same schedule."""
    fig, ax = plots.figure(9.0, 3.0)
    for run, colour in ((shipped, plots.BEFORE_COLOUR), (fixed, plots.AFTER_COLOUR)):
        ax.plot(run.lag_t_s, run.lag_ms, color=colour, lw=1,
                label=f"{run.arm}: longest stall {run.max_lag_ms:.0f} ms")  # fmt: skip
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylabel("loop lag (ms)")
    ax.set_xlabel("time in the window (s)")
    ax.legend(loc="upper right", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig
