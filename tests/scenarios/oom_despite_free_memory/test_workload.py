"""Lab 276's workload: the incident's facts on the simulator, and the simulator against a GPU."""

import pytest

from labsupport.memory.config import MiB
from labsupport.scenarios.oom_despite_free_memory.workload import (
    Op,
    carved_trace,
    random_trace,
    run_trace,
)
from tests.labs.truth import oom_despite_free_memory as truth

EXPANDABLE = {"PYTORCH_ALLOC_CONF": "expandable_segments:True"}
CAP = 1100 * MiB


def sim(trace, env=None, **kwargs):
    kwargs.setdefault("cap_bytes", CAP)
    return run_trace(trace, alloc_env=env, backend="simulator", **kwargs)


def test_default_allocator_ooms_with_500_mib_reserved_but_unallocated():
    r = sim(carved_trace())
    assert (r.outcome, r.failed_op_index) == ("oom", 17)
    assert (r.reserved_bytes, r.allocated_bytes) == (1000 * MiB, 500 * MiB)
    assert truth.largest_free_block_bytes(r.snapshot) == 100 * MiB
    said = truth.parse_oom_message(r.oom_message)
    assert said["reserved_unallocated_bytes"] == 500 * MiB
    assert said["allowed_bytes"] == round(1.07 * 2**30)
    assert not r.expandable_segments and r.backend == "simulator"


def test_the_oom_message_is_torch_2_13s():
    """The closing advice names PYTORCH_CUDA_ALLOC_CONF and the new docs anchor, as the
    strings of torch 2.13.0's libc10_cuda.so do."""
    message = sim(carved_trace()).oom_message
    assert message.startswith("CUDA out of memory. Tried to allocate 200.00 MiB. GPU 0 has a ")
    assert "Including non-PyTorch memory, this process has 1000.00 MiB memory in use. " in message
    assert message.endswith(
        "If reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See "
        "documentation for Memory Management  (https://docs.pytorch.org/docs/stable/notes/"
        "cuda.html#optimizing-memory-usage-with-pytorch-cuda-alloc-conf)"
    )


@pytest.mark.parametrize(
    "env", [EXPANDABLE, {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}]
)
def test_expandable_segments_cures_it_under_either_name(env):
    r = sim(carved_trace(), env)
    assert r.ok and r.expandable_segments
    assert r.reserved_bytes == 700 * MiB  # the holes were unmapped, the segment grew by 200
    assert not r.warnings  # torch 2.12 dropped the old name's deprecation warning


def test_empty_cache_before_the_request_does_not_cure_it():
    r = sim(carved_trace(empty_cache_before_request=True))
    assert r.outcome == "oom" and r.reserved_bytes - r.allocated_bytes == 500 * MiB


def test_max_split_size_also_cures_this_trace_by_never_carving_the_big_block():
    r = sim(carved_trace(), {"PYTORCH_ALLOC_CONF": "max_split_size_mb:128"})
    assert r.ok and not r.expandable_segments
    assert r.allocator_settings["max_split_size"] == 128 * MiB
    # ... but not when the threshold is above the cached block: it is split as by default
    assert sim(carved_trace(), {"PYTORCH_ALLOC_CONF": "max_split_size_mb:1024"}).outcome == "oom"


def test_largest_request_that_fits_after_the_batch():
    trace = carved_trace(request_mib=0)
    assert sim(trace, probe_largest_request=True).largest_request_bytes == 100 * MiB
    assert sim(trace, EXPANDABLE, probe_largest_request=True).largest_request_bytes == 600 * MiB


def test_another_process_fills_the_card_whatever_the_budget():
    trace = [
        Op("alloc", "a", 300 * MiB),
        Op("external", "server", 1000 * MiB),
        Op("request", "b", 200 * MiB),
    ]
    r = sim(trace, total_bytes=1600 * MiB, context_bytes=200 * MiB)
    assert r.outcome == "oom" and r.card_free_bytes == 100 * MiB
    assert "of which 100.00 MiB is free. Process 3310 has 1000.00 MiB memory in use." in (
        r.oom_message
    )
    assert "this process has 500.00 MiB memory in use" in r.oom_message
    assert [p["name"] for p in r.processes] == ["server", "this process"]
    # expandable segments map new pages from the card too: no cure here
    assert sim(trace, EXPANDABLE, total_bytes=1600 * MiB, context_bytes=200 * MiB).outcome == "oom"


def test_trace_building_blocks():
    trace = carved_trace(empty_cache_before_request=True)
    assert [str(op) for op in trace[:3]] == ["alloc big 1000 MiB", "free big", "alloc t0 100 MiB"]
    assert str(trace[-2]) == "empty_cache()" and trace[-1].kind == "request"
    assert "another process" in str(Op("external", "server", MiB))
    with pytest.raises(ValueError, match="unknown op"):
        Op("malloc", "x", 1)


def test_random_traces_are_seeded_and_never_repeat_a_size():
    a, b = random_trace(7), random_trace(7)
    assert a == b and a != random_trace(8)
    sizes = [op.size_bytes for op in a if op.kind == "alloc"]
    assert len(sizes) == len(set(sizes))


def test_fresh_process_gives_the_same_result():
    trace = carved_trace()
    here, there = sim(trace), sim(trace, fresh_process=True)
    assert (there.outcome, there.failed_op_index, there.reserved_bytes) == (
        here.outcome,
        here.failed_op_index,
        here.reserved_bytes,
    )
    assert there.processes == here.processes


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        run_trace([], cap_bytes=CAP, backend="tpu")


SERVER = [Op("external", "server", 70000 * MiB)]
FIDELITY_CASES = [
    ("headline-default", carved_trace(), {}),
    ("headline-expandable", carved_trace(), EXPANDABLE),
    (
        "headline-expandable-old-name",
        carved_trace(),
        {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
    ),
    ("headline-empty-cache", carved_trace(empty_cache_before_request=True), {}),
    ("headline-max-split", carved_trace(), {"PYTORCH_ALLOC_CONF": "max_split_size_mb:128"}),
    ("random-1", random_trace(1), {}),
    ("random-2", random_trace(2), {}),
    ("random-3-expandable", random_trace(3), EXPANDABLE),
    ("card-full", SERVER + carved_trace(pieces=4, request_mib=0), {}),
]


@pytest.mark.gpu
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name, trace, env", FIDELITY_CASES, ids=[c[0] for c in FIDELITY_CASES])
def test_simulator_matches_the_real_allocator(name, trace, env):
    """Same trace, same cap: the real allocator (fresh process) and the simulator agree on the
    outcome, the op that failed, the reserved bytes and the segment sizes."""
    cap = 1100 * MiB if name.startswith(("headline", "card")) else 1024 * MiB
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
    if real.outcome == "oom":  # the same wording, whatever the numbers
        assert real.oom_message.split(". ")[0] == model.oom_message.split(". ")[0]
        assert real.oom_message[-120:] == model.oom_message[-120:]
