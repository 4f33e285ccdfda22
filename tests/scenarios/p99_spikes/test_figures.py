"""Unit tests of lab 290's figures on a run built by hand (no workload)."""

from labsupport.scenarios.p99_spikes import figures
from tests.labs.truth import p99_spikes as truth


def test_timeline_draws_every_request_and_the_p99():
    run = truth.synthetic_run("steps", 0)
    ax = figures.timeline(run).axes[0]
    assert len(ax.collections[0].get_offsets()) == len(run.requests)
    assert f"p99 {run.p99_ttft_ms:.0f} ms" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert not ax.patches  # nothing shaded: the timeline does not hint at a cause


def test_logs_draw_a_span_for_each_long_entry_of_every_log_alike():
    run = truth.synthetic_run("collections", 0)
    fig = figures.logs(run)
    assert len(fig.axes) == 4
    for ax, (name, _) in zip(fig.axes[1:], figures.LOGS, strict=True):
        long = [e for e in getattr(run, name) if e.duration_ms >= 20.0]
        assert len(ax.patches) == len(long)
        assert {p.get_facecolor() for p in ax.patches} <= {fig.axes[1].patches[0].get_facecolor()}


def test_comparison_has_one_panel_per_arm_on_a_shared_axis():
    fig = figures.comparison(truth.synthetic_run("steps", 0), truth.synthetic_run("steps", 1))
    assert len(fig.axes) == 2
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()
