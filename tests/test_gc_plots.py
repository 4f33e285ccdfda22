"""Unit tests of labsupport.gc_plots on a synthetic arm (no workload run)."""

import numpy as np

from labsupport import gc_pauses, gc_plots


def _arm(name: str) -> gc_pauses.ArmResult:
    reqs = [
        gc_pauses.RequestRecord(i, i * 0.1, i * 0.1 + 0.005, i * 0.1 + 0.5, 64) for i in range(50)
    ]
    samples = gc_pauses.MemorySamples(
        np.linspace(0, 5, 11),
        np.arange(11) + 100,
        np.full(11, 1 << 20),
        np.zeros((11, 3), dtype=int),
    )
    return gc_pauses.ArmResult(
        arm=name,
        device="cpu",
        config=gc_pauses.LoopConfig(),
        requests=reqs,
        itl_ms=np.full(100, 6.0),
        pauses=[gc_pauses.Pause(2, 1.0, 150.0, 10), gc_pauses.Pause(0, 2.0, 0.1, 0)],
        samples=samples,
        live_after_full=np.zeros((0, 2)),
        window_s=5.0,
        heap_tracked_objects=1,
        full_gc_ms_at_start=1.0,
        tracked_start=1,
        tracked_end=1,
        frozen_objects=0,
        gc_enabled_end=True,
        thresholds_end=(700, 10, 10),
        heap_intact=True,
        after_warmup_ms=0.0,
        requests_arrived=50,
    )


def test_timeline_shades_each_gen2_pause_once():
    fig = gc_plots.timeline(_arm("default"))
    ax = fig.axes[0]
    assert len(ax.patches) == 1  # one gen-2 pause shaded; the gen-0 one is not
    assert "1 gen-2 pauses" in ax.get_title()


def test_comparison_has_a_panel_per_arm_and_one_for_memory():
    result = gc_pauses.Comparison({"default": _arm("default"), "fixed": _arm("fixed")})
    fig = gc_plots.comparison(result)
    assert len(fig.axes) == 3
    assert fig.axes[-1].get_ylabel() == "live request objects"
