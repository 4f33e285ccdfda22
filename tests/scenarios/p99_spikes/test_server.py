"""Unit tests of lab 290's server (labsupport.scenarios.p99_spikes: server, parts, state,
monitors, arms, the variants)."""

from __future__ import annotations

import asyncio
import gc
import math
import os
import threading
import time
from collections import deque

import numpy as np
import pytest

from labsupport.scenarios import p99_spikes
from labsupport.scenarios.p99_spikes import arms, monitors, parts, server, state

TINY = p99_spikes.Scale(warmup_s=0.3, duration_s=1.2, device="cpu")


def test_variants_are_deterministic_and_the_seed_picks_what_is_pathological():
    assert p99_spikes.variant(4) == p99_spikes.variant(4)
    big_state, slow_volume, docs = (p99_spikes.variant(s) for s in (0, 1, 2))
    assert big_state.heap_objects > 4 * slow_volume.heap_objects and big_state.logprobs_k > 0
    assert slow_volume.volume_ms >= 150 > big_state.volume_ms and slow_volume.doc_every_s == 0
    assert docs.doc_every_s > 0 and docs.doc_tokens[0] > parts.DEFAULT_BUDGET
    assert len({p99_spikes.variant(s).arrival_rate_per_s for s in range(6)}) > 1


def test_schedule_is_seeded_sorted_and_has_documents_only_when_the_variant_sends_them():
    v = p99_spikes.variant(2)
    a1, p1, o1 = server.schedule(v, 6.0, 2)
    a2, _, _ = server.schedule(v, 6.0, 2)
    assert np.array_equal(a1, a2) and np.all(np.diff(a1) >= 0) and a1[-1] < 6.0
    assert (p1 > parts.DEFAULT_BUDGET).sum() >= 2 and len(o1) == len(a1)
    _, p0, _ = server.schedule(p99_spikes.variant(0), 6.0, 0)
    assert p0.max() <= 256


def _req(i, prompt, prefilled=0):
    r = state.Request(i, -1, 0.0, prompt, 4)
    r.prefilled = prefilled
    return r


def test_scheduler_runs_running_requests_first_and_caps_one_prompt_per_step():
    s = parts.Scheduler(max_num_batched_tokens=1000)
    doc = _req(0, 30_000, prefilled=100)
    decoding = _req(1, 50, prefilled=50)
    running, waiting = [doc, decoding], deque([_req(2, 200), _req(3, 200)])
    plan = s.plan(running, waiting)
    assert [(r.request_id, n) for r, n in plan] == [(0, 1000)]  # the document takes it all
    s.long_prefill_token_threshold = 256
    running, waiting = [doc, decoding], deque([_req(2, 200), _req(3, 900)])
    plan = s.plan(running, waiting)
    assert [(r.request_id, n) for r, n in plan] == [(0, 256), (1, 1), (2, 200), (3, 256)]
    assert [r.request_id for r in running] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "knob,value", [("max_num_batched_tokens", 0), ("long_prefill_token_threshold", -1),
                   ("max_num_batched_tokens", 2.5), ("long_prefill_token_threshold", True)],
)  # fmt: skip
def test_scheduler_knobs_are_validated(knob, value):
    with pytest.raises(ValueError):
        setattr(parts.Scheduler(), knob, value)


def test_request_log_flush_makes_lines_durable_and_close_removes_the_file():
    log = parts.RequestLog(volume_ms=30.0, n_measured=3)
    log.set_origin(time.perf_counter())
    for i in range(3):
        log.write(i, f"line {i}\n")
    assert np.isnan(log.durable_s).all()
    t = time.perf_counter()
    log.flush()
    assert time.perf_counter() - t >= 0.029  # the volume's latency
    assert np.all(log.durable_s >= log.written_s) and log.lines == 3 and log.flushes == 1
    path = log.path
    log.close()
    assert not os.path.exists(path)


def test_request_log_takes_writes_while_a_flush_runs_in_a_thread():
    log = parts.RequestLog(volume_ms=50.0, n_measured=2)
    log.write(0, "a\n")
    flusher = threading.Thread(target=log.flush)
    flusher.start()
    time.sleep(0.01)
    t = time.perf_counter()
    log.write(1, "b\n")  # the flush is in its fsync: this must not wait for it
    assert time.perf_counter() - t < 0.02
    flusher.join()
    assert not np.isnan(log.durable_s[0]) and np.isnan(log.durable_s[1])
    log.close()
    assert not np.isnan(log.durable_s[1])


def test_server_handle_exposes_only_what_a_fix_may_change():
    log = parts.RequestLog(0.0, 0)
    handle = parts.ServerHandle(parts.Scheduler(), log, 2.0)
    assert handle.flush_request_log is parts.flush_on_loop and handle.flush_every_s == 2.0
    with pytest.raises(AttributeError):
        handle.scheduler = parts.Scheduler()
    with pytest.raises(AttributeError):
        handle.flush_every_s = 60.0
    with pytest.raises(TypeError, match="coroutine function"):
        handle.flush_request_log = lambda log: None

    async def fine(log):
        pass

    handle.flush_request_log = fine
    log.close()


def test_heap_is_tracked_and_tamper_evident():
    gc.collect()  # earlier tests' garbage, so a collection meanwhile cannot hide the heap's growth
    before = len(gc.get_objects())
    heap = state.LongLivedHeap(6_000, 1_000, seed=0)
    gc.collect()
    assert len(gc.get_objects()) - before >= 5_000
    assert heap.intact()
    heap.blocks.clear()
    assert not heap.intact()


def test_requests_form_cycles_that_only_the_collector_frees():
    gc.collect()
    live = state.Request.live
    gc.disable()
    try:
        state.Request(0, -1, 0.0, 8, 4)  # dropped at once
        assert state.Request.live == live + 1  # reference counting alone cannot free it
    finally:
        gc.enable()
    gc.collect()
    assert state.Request.live == live


def test_pause_log_records_collections_with_generation_and_duration():
    log = monitors.PauseLog()
    log.install()
    t = time.perf_counter()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        log.remove()
    assert not log.installed()
    entries = log.entries(t, 0.0, 10.0)
    assert [c.generation for c in entries[-2:]] == [0, 2]
    assert log.full_since(t) and log.first_full_ms(t) >= 0
    assert math.isnan(log.first_full_ms(time.perf_counter() + 1))


def test_slow_callback_log_names_the_task_that_held_the_loop():
    log = monitors.SlowCallbackLog(0.02)

    async def blocks():
        time.sleep(0.03)

    async def main():
        await asyncio.gather(
            asyncio.create_task(blocks(), name="request-log"),
            asyncio.create_task(asyncio.sleep(0.01), name="quick"),
        )

    log.install()
    try:
        t = time.perf_counter()
        asyncio.run(main())
    finally:
        log.remove()
    assert not log.installed()
    entries = log.entries(t, 0.0, 10.0)
    assert [e.task for e in entries] == ["request-log"] and entries[0].duration_ms >= 29


def test_resolve_hook_accepts_strings_refs_callables_and_tuples():
    class Ref:
        def load(self):
            return len

    assert server._resolve_hook(None) is None
    assert server._resolve_hook(len) is len
    assert server._resolve_hook(Ref()) is len
    assert server._resolve_hook("gc:collect") is gc.collect
    calls = []
    chained = server._resolve_hook((lambda s: calls.append(1), None, lambda s: calls.append(2)))
    chained(object())
    assert calls == [1, 2]
    with pytest.raises(TypeError):
        server._resolve_hook(42)


def test_serve_in_process_returns_sane_measurements():
    v = p99_spikes.variant(1)
    run = server.serve("default", None, v, TINY, heap_scale=0.2)
    arrivals, prompts, outs = server.schedule(v, TINY.duration_s, v.seed)
    assert len(run.requests) == len(arrivals) and run.device == "cpu" and run.heap_intact
    assert all(r.first_token_s >= r.arrival_s and r.finish_s >= r.first_token_s
               for r in run.requests)  # fmt: skip
    assert np.array_equal([r.n_tokens for r in run.requests], outs)
    assert np.array_equal(run.prefill_done, prompts)
    floor = [server.STEP_FLOOR_MS + server.PREFILL_MS_PER_TOKEN * s.prefill_tokens
             for s in run.steps]  # fmt: skip
    assert np.all(np.array([s.duration_ms for s in run.steps]) >= np.array(floor) - 0.5)
    assert run.collections and run.monitors_intact and run.tampered == []
    assert any(c.task == "request-log" for c in run.slow_callbacks)  # this variant's volume
    assert not np.isnan(run.log_durable_s).any()  # the last lines are flushed at close
    assert run.unfreed_after_drive <= run.history_size
    assert run.wall_start <= run.wall_end and run.perf_elapsed_s >= run.window_s
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_serve_reports_a_fix_that_changes_the_server_beyond_its_handle():
    original = parts.Scheduler.plan

    def rebind(srv):
        parts.Scheduler.plan = lambda self, running, waiting: original(self, running, waiting)

    def quiet_volume(srv):
        srv.request_log.volume_ms = 0.0  # a faster disk, by decree

    v = p99_spikes.variant(1)
    try:
        run = server.serve("fixed", (rebind, quiet_volume), v, TINY, heap_scale=0.02)
    finally:
        parts.Scheduler.plan = original
    assert {"Scheduler.plan", "server.request_log.volume_ms"} <= set(run.tampered)


def test_drive_collector_finds_the_next_collection_unless_collection_is_off():
    log = monitors.PauseLog()
    log.install()
    try:
        assert server.drive_collector(log, batch=50_000, cap=2_000_000) > 0
        gc.disable()
        try:
            assert math.isnan(server.drive_collector(log, batch=50_000, cap=200_000))
        finally:
            gc.enable()
    finally:
        log.remove()


def test_probe_hook_says_what_a_fix_changed():
    async def off_loop(log):
        await asyncio.to_thread(log.flush)

    def fix(srv):
        srv.scheduler.long_prefill_token_threshold = 512
        srv.flush_request_log = off_loop

    got = server.probe_hook(fix)
    assert got["scheduler"] == (parts.DEFAULT_BUDGET, 512) and got["flush_replaced"]
    assert 0 <= got["durable_after_s"] < 0.5
    assert server.probe_hook(None)["flush_replaced"] is False

    async def skip(log):
        pass

    def never_flush(srv):
        srv.flush_request_log = skip

    assert math.isnan(server.probe_hook(never_flush, flush_every_s=0.2)["durable_after_s"])


def freeze_hook(server) -> None:
    gc.freeze()


@pytest.mark.timeout(120)
def test_arms_run_in_fresh_processes_and_a_failing_fix_is_reported():
    v = p99_spikes.variant(1)  # a small start-up state: quick to build
    timed = arms.run_arm_timed("fixed", freeze_hook, variant=v, scale=TINY)
    assert timed.run.frozen_objects > 0  # the hook ran in the child
    assert timed.wall_before <= timed.run.wall_start <= timed.run.wall_end <= timed.wall_after
    with pytest.raises(arms.ArmFailed, match="fixed arm failed"):
        arms.run_arm("fixed", "math:factorial", variant=v, scale=TINY, progress=False)
    with pytest.raises(ValueError):
        arms.run_arm("fixed", None, variant=v, scale=TINY)
    with pytest.raises(ValueError):
        arms.run_arm("nope", variant=v, scale=TINY)


@pytest.mark.gpu
@pytest.mark.timeout(120)
def test_arm_runs_its_matmuls_on_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    scale = p99_spikes.Scale(warmup_s=0.3, duration_s=1.2, device="auto")
    run = arms.run_arm("default", variant=p99_spikes.variant(2), scale=scale, progress=False)
    assert run.device == "cuda" and len(run.requests) > 40 and run.p99_ttft_ms > 0
