"""Unit tests of labsupport.gc_pauses and labsupport.token_loop (lab 290's workload)."""

from __future__ import annotations

import gc
import math
from dataclasses import replace

import numpy as np
import pytest

from labsupport import gc_pauses, token_loop
from labsupport.gc_pauses import ArmResult, LoopConfig, Pause, PauseLog, RequestRecord

TINY = LoopConfig(
    heap_objects=30_000,
    warmup_s=0.3,
    duration_s=1.2,
    arrival_rate_per_s=80,
    output_tokens=(16, 32),
    sample_every_s=0.1,
    device="cpu",
)


def test_pause_log_records_every_collection_with_generation_and_duration():
    with PauseLog() as log:
        gc.collect(0)
        gc.collect(2)
    pauses = log.pauses()
    assert [p.generation for p in pauses[-2:]] == [0, 2]
    assert all(p.duration_ms >= 0 and p.collected >= 0 for p in pauses)
    assert pauses[-1].start_s >= pauses[-2].start_s
    assert log._cb not in gc.callbacks  # uninstalled on exit


def test_pause_log_counts_what_a_collection_frees():
    class Node:
        pass

    with PauseLog() as log:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the collector frees it
        del a, b
        gc.collect()
    assert log.pauses()[-1].collected >= 2


def test_pause_log_window_and_origin():
    log = PauseLog(clock=iter([10.0, 10.5, 20.0, 20.25]).__next__)
    log._callback("start", {"generation": 0, "collected": 0})
    log._callback("stop", {"generation": 0, "collected": 3, "uncollectable": 0})
    log._callback("start", {"generation": 2, "collected": 0})
    log._callback("stop", {"generation": 2, "collected": 9, "uncollectable": 0})
    assert log.pauses(origin=10.0) == [Pause(0, 0.0, 500.0, 3), Pause(2, 10.0, 250.0, 9)]
    assert log.pauses(origin=10.0, since_s=1.0) == [Pause(2, 10.0, 250.0, 9)]
    assert log.pauses(origin=10.0, until_s=1.0) == [Pause(0, 0.0, 500.0, 3)]
    assert Pause(2, 10.0, 250.0, 9).end_s == 10.25


def test_percentile_helper_matches_numpy_and_handles_empty():
    data = np.random.default_rng(0).exponential(5.0, size=1001)
    assert gc_pauses.percentile_ms(data, 99) == pytest.approx(np.percentile(data, 99))
    assert gc_pauses.percentile_ms([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert math.isnan(gc_pauses.percentile_ms([], 99))


def test_request_record_ttft():
    assert RequestRecord(1, 2.0, 2.125, 3.0, 10).ttft_ms == pytest.approx(125.0)


def test_heap_is_tracked_and_tamper_evident():
    before = len(gc.get_objects())
    heap = token_loop.LongLivedHeap(6_000, 1_000, seed=0)
    assert len(gc.get_objects()) - before >= 5_000  # containers the collector must walk
    assert heap.intact()
    heap.blocks.clear()
    assert not heap.intact()


def test_requests_form_cycles_that_only_the_collector_frees():
    gc.collect()
    live = token_loop.Request.live
    gc.disable()
    try:
        token_loop.Request(0, 0.0, [1, 2, 3], 4, measured=False)  # dropped at once
        assert token_loop.Request.live == live + 1  # refcounting alone cannot free it
    finally:
        gc.enable()
    gc.collect()
    assert token_loop.Request.live == live


def test_resolve_hook_accepts_strings_refs_and_callables():
    class Ref:
        def load(self):
            return len

    assert token_loop._resolve_hook(None) is None
    assert token_loop._resolve_hook(len) is len
    assert token_loop._resolve_hook(Ref()) is len
    assert token_loop._resolve_hook("gc:disable") is gc.disable
    with pytest.raises(TypeError):
        token_loop._resolve_hook(42)


def _fake_arm(live, after_full=(), window_s=10.0, heap_intact=True) -> ArmResult:
    t = np.linspace(0, window_s, len(live))
    requests = [RequestRecord(i, i * window_s / 200, 0.0, 0.0, 1) for i in range(200)]
    samples = gc_pauses.MemorySamples(
        t, np.array(live), np.full(len(live), 1 << 20), np.zeros((len(live), 3), dtype=int)
    )
    return ArmResult(
        arm="fixed",
        device="cpu",
        config=TINY,
        requests=requests,
        itl_ms=np.array([]),
        pauses=[],
        samples=samples,
        live_after_full=np.array(after_full, dtype=float).reshape(-1, 2),
        window_s=window_s,
        heap_tracked_objects=0,
        full_gc_ms_at_start=0.0,
        tracked_start=0,
        tracked_end=0,
        frozen_objects=0,
        gc_enabled_end=True,
        thresholds_end=(700, 10, 10),
        heap_intact=heap_intact,
        after_warmup_ms=0.0,
        requests_arrived=len(requests),
    )


def test_memory_verdict_tells_a_leak_from_a_sawtooth():
    # collections keep up: right after each full one, the same ~300 requests are alive
    sawtooth = _fake_arm([300, 400, 320, 410, 300, 405, 310, 400], after_full=[(1, 300), (9, 305)])
    assert sawtooth.leak_fraction == pytest.approx(5 / 160, abs=0.01)
    assert gc_pauses.memory_problems(sawtooth) == []
    # no full collection at all, and every arrival stays alive
    leak = _fake_arm(list(range(300, 500, 25)))
    assert leak.leak_fraction == pytest.approx(175 / 199, abs=0.01)
    assert "never freed" in gc_pauses.memory_problems(leak)[0]
    assert "heap" in gc_pauses.memory_problems(_fake_arm([300] * 8, heap_intact=False))[0]


def test_serve_in_process_returns_sane_measurements():
    arm = token_loop.serve("default", None, TINY)
    assert arm.device == "cpu" and arm.heap_intact and arm.gc_enabled_end
    assert 40 <= len(arm.requests) <= 160  # ~80/s for 1.2 s, open loop
    assert all(
        r.first_token_s >= r.arrival_s and r.finish_s > r.first_token_s for r in arm.requests
    )
    assert arm.itl_ms.size > 10 * len(arm.requests)
    assert 0 < arm.p50_ttft_ms <= arm.p99_ttft_ms
    assert np.median(arm.itl_ms) >= TINY.step_floor_ms * 0.9  # steps are paced like a model
    assert arm.pauses and all(-0.01 <= p.start_s <= arm.window_s for p in arm.pauses)
    assert arm.samples.t_s.size >= 5 and arm.samples.gen_counts.shape[1] == 3
    assert arm.heap_tracked_objects > TINY.heap_objects
    assert arm.full_gc_ms_at_start > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.timeout(120)
def test_run_arm_in_fresh_processes_and_compare():
    result = gc_pauses.compare_arms("gc:freeze", arms=("fixed", "disabled"), config=TINY)
    fixed, disabled = result.fixed, result.disabled
    assert fixed.frozen_objects > TINY.heap_objects  # the hook ran in the child
    assert not disabled.gc_enabled_end and not disabled.gen2_pauses
    assert disabled.leak_fraction > 0.5
    assert "disabled" in result.table() and "fixed" in result.table()
    summary = disabled.summary()
    assert summary["arm"] == "disabled" and summary["requests"] == len(disabled.requests)


def test_run_arm_reports_a_failing_hook_clearly():
    with pytest.raises(gc_pauses.ArmFailed, match="fixed arm failed: TypeError"):
        gc_pauses.run_arm("fixed", "math:factorial", config=TINY)  # needs an argument
    with pytest.raises(ValueError):
        gc_pauses.run_arm("fixed", None, config=TINY)
    with pytest.raises(ValueError):
        gc_pauses.run_arm("nope", config=TINY)


def test_a_tuple_of_hooks_runs_in_order():
    calls = []
    hook = token_loop._resolve_hook((lambda: calls.append(1), None, lambda: calls.append(2)))
    hook()
    assert calls == [1, 2]


@pytest.mark.gpu
@pytest.mark.timeout(120)
def test_arm_runs_its_matmuls_on_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    arm = gc_pauses.run_arm("default", config=replace(TINY, device="auto"))
    assert arm.device == "cuda"
    assert len(arm.requests) > 40 and arm.p99_ttft_ms > 0
