"""The lab 276 workload: the headline facts on the simulator, and the simulator against a GPU."""

import pytest

from labsupport.memory.config import MiB
from labsupport.memory.snapshot import parse_oom_message
from labsupport.memory.workload import (
    Op,
    fragmentation_trace,
    random_trace,
    run_trace,
)

EXPANDABLE = {"PYTORCH_ALLOC_CONF": "expandable_segments:True"}


def sim(trace, env=None, **kwargs):
    return run_trace(trace, alloc_env=env, backend="simulator", **kwargs)


def test_default_allocator_ooms_with_500_mib_reserved_but_unallocated():
    r = sim(fragmentation_trace())
    assert (r.outcome, r.failed_op_index) == ("oom", 17)
    assert (r.reserved_bytes, r.allocated_bytes) == (1000 * MiB, 500 * MiB)
    assert r.reserved_unallocated_bytes == 500 * MiB and r.largest_free_block_bytes == 100 * MiB
    assert parse_oom_message(r.oom_message).reserved_unallocated_bytes == 500 * MiB
    assert not r.expandable_segments and r.backend == "simulator"


@pytest.mark.parametrize(
    "env", [EXPANDABLE, {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}]
)
def test_expandable_segments_cures_it_under_either_name(env):
    r = sim(fragmentation_trace(), env)
    assert r.ok and r.expandable_segments
    assert r.reserved_bytes == 700 * MiB  # the holes were unmapped, the segment grew by 200
    assert ("PYTORCH_CUDA_ALLOC_CONF" in env) == any("deprecated" in w for w in r.warnings)


def test_empty_cache_before_the_request_does_not_cure_it():
    r = sim(fragmentation_trace(empty_cache_before_request=True))
    assert r.outcome == "oom" and r.reserved_unallocated_bytes == 500 * MiB


def test_max_split_size_also_cures_this_trace_by_never_carving_the_big_block():
    r = sim(fragmentation_trace(), {"PYTORCH_ALLOC_CONF": "max_split_size_mb:128"})
    assert r.ok and not r.expandable_segments
    assert r.allocator_settings["max_split_size"] == 128 * MiB
    # ... but not when the threshold is above the cached block: it is split as by default
    assert (
        sim(fragmentation_trace(), {"PYTORCH_ALLOC_CONF": "max_split_size_mb:1024"}).outcome
        == "oom"
    )


def test_largest_request_that_fits_after_fragmentation():
    trace = fragmentation_trace(request_mib=0)
    assert sim(trace, probe_largest_request=True).largest_request_bytes == 100 * MiB
    assert sim(trace, EXPANDABLE, probe_largest_request=True).largest_request_bytes == 600 * MiB


def test_trace_building_blocks():
    trace = fragmentation_trace(empty_cache_before_request=True)
    assert [str(op) for op in trace[:3]] == ["alloc big 1000 MiB", "free big", "alloc t0 100 MiB"]
    assert str(trace[-2]) == "empty_cache()" and trace[-1].kind == "request"
    with pytest.raises(ValueError, match="unknown op"):
        Op("malloc", "x", 1)


def test_random_traces_are_seeded_and_never_repeat_a_size():
    a, b = random_trace(7), random_trace(7)
    assert a == b and a != random_trace(8)
    sizes = [op.size_bytes for op in a if op.kind == "alloc"]
    assert len(sizes) == len(set(sizes))


def test_fresh_process_gives_the_same_result():
    trace = fragmentation_trace()
    here, there = sim(trace), sim(trace, fresh_process=True)
    assert (there.outcome, there.failed_op_index, there.reserved_bytes) == (
        here.outcome,
        here.failed_op_index,
        here.reserved_bytes,
    )


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        run_trace([], backend="tpu")


FIDELITY_CASES = [
    ("headline-default", fragmentation_trace(), {}),
    ("headline-expandable", fragmentation_trace(), EXPANDABLE),
    (
        "headline-expandable-old-name",
        fragmentation_trace(),
        {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
    ),
    ("headline-empty-cache", fragmentation_trace(empty_cache_before_request=True), {}),
    ("headline-max-split", fragmentation_trace(), {"PYTORCH_ALLOC_CONF": "max_split_size_mb:128"}),
    ("random-1", random_trace(1), {}),
    ("random-2", random_trace(2), {}),
    ("random-3-expandable", random_trace(3), EXPANDABLE),
]


@pytest.mark.gpu
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name, trace, env", FIDELITY_CASES, ids=[c[0] for c in FIDELITY_CASES])
def test_simulator_matches_the_real_allocator(name, trace, env):
    """Same trace, same cap: the real allocator (fresh process) and the simulator agree on the
    outcome, the op that failed, the reserved bytes and the segment sizes."""
    cap = 1100 * MiB if name.startswith("headline") else 1024 * MiB
    real = run_trace(trace, cap_bytes=cap, alloc_env=env, backend="cuda")
    model = run_trace(
        trace, cap_bytes=cap, alloc_env=env, backend="simulator", total_bytes=real.total_bytes
    )
    print(f"{name}: {real.device_name}, torch {real.torch_version}: {real.describe()}")
    assert (model.outcome, model.failed_op_index) == (real.outcome, real.failed_op_index)
    assert model.reserved_bytes == real.reserved_bytes
    assert model.allocated_bytes == real.allocated_bytes
    assert model.expandable_segments == real.expandable_segments
    sizes = sorted(s["total_size"] for s in real.snapshot["segments"])
    assert sorted(s["total_size"] for s in model.snapshot["segments"]) == sizes
