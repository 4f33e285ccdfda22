"""Lab 288's timelines, drawn from recorded runs (no processes)."""

from __future__ import annotations

from labsupport.scenarios.killed_while_loading import pods as sr
from labsupport.scenarios.killed_while_loading import timeline

PHASES = {
    "generate_s": 0.4,
    "read_s": 0.1,
    "to_device_s": 0.01,
    "warmup_s": 0.01,
    "slow_start_s": 3.0,
    "total_s": 3.52,
}


def _killed_loop() -> sr.PodRun:
    containers = [
        sr.ContainerRun(1, 0.0, 2.9, 143, None, "liveness"),
        sr.ContainerRun(2, 2.9, 5.8, 143, None, "liveness"),
    ]
    events = [
        (0.5, "Warning", "Unhealthy", "Liveness probe failed: connection refused"),
        (2.5, "Normal", "Killing", "Container server failed liveness probe, will be restarted"),
        (5.4, "Normal", "Killing", "Container server failed liveness probe, will be restarted"),
        (5.8, "Warning", "BackOff", "Back-off restarting failed container"),
    ]
    return sr.PodRun("llm", 0.1, 8.0, containers, events, None, None, 2)


def _fixed() -> sr.PodRun:
    containers = [sr.ContainerRun(1, 0.0, 9.0, 137, 5.0, "liveness", PHASES)]
    events = [
        (0.5, "Warning", "Unhealthy", "Startup probe failed: connection refused"),
        (8.0, "Warning", "Unhealthy", "Liveness probe failed: context deadline exceeded"),
        (9.0, "Normal", "Killing", "Container server failed liveness probe, will be restarted"),
    ]
    return sr.PodRun("llm", 0.1, 9.5, containers, events, 5.5, 0, 0, "", 5.6, 9.0)


def test_phase_spans_put_the_untimed_start_first():
    spans = timeline._phase_spans(0.0, 5.0, PHASES)
    assert spans[0][2].startswith("Python") and abs(spans[0][1] - 1.48) < 1e-9
    assert abs(sum(width for _, width, _, _ in spans) - 5.0) < 1e-9


def test_timeline_draws_loads_kills_and_probe_failures():
    fig = timeline.timeline(_killed_loop())
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "loading (port closed)" in labels and "killed (liveness probe)" in labels
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["container", "liveness fails"], "only the probes the events mention"
    assert ax.get_xlim() == (0.0, 8.0)


def test_comparison_has_both_pods_on_one_axis():
    fig = timeline.comparison(sr.Comparison(_killed_loop(), _fixed()))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert any("never ready" in t for t in titles)
    assert any("hang caught in 34 cluster s" in t for t in titles)
    labels = fig.axes[1].get_legend_handles_labels()[1]
    assert "serving" in labels and "compile + graph capture (stand-in)" in labels
