"""The simulator follows CUDACachingAllocator.cpp rule by rule (one small test per rule)."""

import pytest

from labsupport.memory.config import AllocatorConfig, MiB
from labsupport.memory.simulator import (
    CachingAllocatorSim,
    OutOfMemoryError,
    get_allocation_size,
    round_size,
)

GiB = 1024 * MiB


def make(conf: str = "", cap_bytes: int | None = None) -> CachingAllocatorSim:
    sim = CachingAllocatorSim(AllocatorConfig.parse(conf), total_bytes=80 * GiB)
    if cap_bytes is not None:
        sim.set_per_process_memory_fraction(cap_bytes / sim.total_bytes)
    return sim


def segments(sim):
    return [
        (
            s["segment_type"],
            s["total_size"] // 512,
            [(b["size"] // 512, b["state"][0]) for b in s["blocks"]],
        )
        for s in sim.snapshot()["segments"]
    ]


@pytest.mark.parametrize(
    "size, rounded", [(1, 512), (512, 512), (513, 1024), (MiB + 1, MiB + 512), (10 * MiB, 10 * MiB)]
)
def test_round_size_to_512_bytes(size, rounded):
    assert round_size(size, AllocatorConfig()) == rounded


def test_roundup_power2_divisions():
    cfg = AllocatorConfig.parse("roundup_power2_divisions:4")
    assert round_size(1200 * 1024, cfg) == 1280 * 1024  # 1 MiB..2 MiB in four steps
    assert round_size(2 * MiB, cfg) == 2 * MiB


@pytest.mark.parametrize(
    "size, segment",
    [
        (512, 2 * MiB),
        (MiB, 2 * MiB),
        (MiB + 512, 20 * MiB),
        (10 * MiB - 512, 20 * MiB),
        (10 * MiB, 10 * MiB),
        (10 * MiB + 1, 12 * MiB),
        (101 * MiB, 102 * MiB),
    ],
)
def test_segment_size_per_request(size, segment):
    assert get_allocation_size(size) == segment
    sim = make()
    sim.malloc(size)
    assert sim.memory_reserved() == segment


def test_small_and_large_pools_never_share_segments():
    sim = make()
    sim.free(sim.malloc(20 * MiB))  # a cached large segment...
    sim.malloc(1000)  # ...cannot serve a small request: a new 2 MiB small segment
    assert sorted(s[0] for s in segments(sim)) == ["large", "small"]


@pytest.mark.parametrize(
    "cached, size, blocks",
    [
        # small pool: split whenever the remainder is >= 512 B (2 MiB segment, 1 MiB used)
        (MiB, MiB - 512, [(2048, "a"), (2047, "a"), (1, "i")]),
        # large pool: a 1 MiB remainder is not > 1 MiB, so the 19 MiB tensor takes all 20 MiB
        (20 * MiB, 19 * MiB, [(40960, "a")]),
        # large pool: a 2 MiB remainder is split off
        (20 * MiB, 18 * MiB, [(36864, "a"), (4096, "i")]),
        # 1-10 MiB requests get a 20 MiB segment, split
        (None, 8 * MiB, [(16384, "a"), (24576, "i")]),
    ],
)
def test_split_rules(cached, size, blocks):
    sim = make()
    if cached:
        first = sim.malloc(cached)
        if cached > MiB:
            sim.free(first)
    sim.malloc(size)
    assert segments(sim)[0][2] == blocks


def test_best_fit_takes_the_smallest_block_that_fits():
    sim = make()
    ptrs = {mib: sim.malloc(mib * MiB) for mib in (30, 50, 40)}
    for p in ptrs.values():
        sim.free(p)
    assert sim.malloc(35 * MiB) == ptrs[40]


def test_free_coalesces_with_free_neighbours():
    sim = make()
    sim.free(sim.malloc(100 * MiB))
    parts = [sim.malloc(25 * MiB) for _ in range(4)]
    sim.free(parts[1])
    sim.free(parts[2])
    assert [b[0] * 512 // MiB for b in segments(sim)[0][2]] == [25, 50, 25]
    sim.free(parts[0])
    sim.free(parts[3])
    assert segments(sim)[0][2] == [(100 * MiB // 512, "i")]


def test_the_cap_refuses_a_new_segment_and_names_itself_in_the_message():
    sim = make(cap_bytes=100 * MiB)
    sim.malloc(80 * MiB)
    with pytest.raises(OutOfMemoryError, match=r"Tried to allocate 40.00 MiB.*100.00 MiB allowed;"):
        sim.malloc(40 * MiB)
    assert sim.memory_stats()["num_ooms"] == 1


def test_whole_cached_segments_are_released_and_the_allocation_retried():
    sim = make(cap_bytes=1000 * MiB)
    sim.free(sim.malloc(600 * MiB))
    sim.malloc(700 * MiB)  # 600 cached + 700 > cap: release the cached 600, retry
    stats = sim.memory_stats()
    assert sim.memory_reserved() == 700 * MiB and stats["num_alloc_retries"] == 1


def test_empty_cache_frees_only_whole_free_segments():
    sim = make()
    sim.free(sim.malloc(50 * MiB))  # whole free segment
    sim.free(sim.malloc(100 * MiB))
    keep = sim.malloc(30 * MiB)  # best fit: 50 MiB segment, split 30 + 20
    sim.empty_cache()
    assert [s[2] for s in segments(sim)] == [[(30 * MiB // 512, "a"), (20 * MiB // 512, "i")]]
    assert sim.memory_stats()["inactive_split_bytes.all.current"] == 20 * MiB
    sim.free(keep)


@pytest.mark.parametrize(
    "request_mib, reuses_cached_300",
    [
        (290, True),  # >= max_split and within 20 MiB: the oversize block is used whole
        (200, False),  # 300 >= 200 + 20: not allowed, a new segment
        (100, False),
    ],  # below max_split: an oversize block never serves it
)
def test_max_split_size_rules(request_mib, reuses_cached_300):
    sim = make("max_split_size_mb:128")
    cached = sim.malloc(300 * MiB)
    sim.free(cached)
    ptr = sim.malloc(request_mib * MiB)
    assert (ptr == cached) == reuses_cached_300
    if reuses_cached_300:
        assert segments(sim)[0][2] == [(300 * MiB // 512, "a")]  # never split


def test_oversize_blocks_are_released_first_under_pressure():
    sim = make("max_split_size_mb:128", cap_bytes=1000 * MiB)
    sim.free(sim.malloc(300 * MiB))
    sim.free(sim.malloc(500 * MiB))
    sim.malloc(400 * MiB)  # 800 + 400 > cap: release one oversize block >= 400 (the 500)
    assert sorted(s["total_size"] // MiB for s in sim.snapshot()["segments"]) == [300, 400]
    assert sim.memory_stats()["num_alloc_retries"] == 0


def test_expandable_segment_grows_in_20_mib_pages():
    sim = make("expandable_segments:True")
    sim.malloc(30 * MiB)
    sim.malloc(100 * MiB)
    snap = sim.snapshot()["segments"]
    assert len(snap) == 1 and snap[0]["is_expandable"]
    assert sim.memory_reserved() == 140 * MiB  # 30 -> 40 MiB mapped, then +100 after the tail
    sim.malloc(1000)
    assert sim.memory_reserved() == 142 * MiB  # the small pool maps 2 MiB pages


def test_expandable_unmaps_whole_free_pages_and_grows_under_the_cap():
    sim = make("expandable_segments:True", cap_bytes=300 * MiB)
    parts = [sim.malloc(50 * MiB) for _ in range(5)]
    assert sim.memory_reserved() == 260 * MiB  # whole 20 MiB pages: 50 needs 60, 100 needs 100
    sim.free(parts[1])  # offsets 50-100: pages 60-80 and 80-100 lie wholly inside
    sim.free(parts[3])  # offsets 150-200: pages 160-200
    sim.malloc(80 * MiB)  # 260 + 80 > cap: unmap those 4 pages (-80), then grow the tail
    assert sim.memory_reserved() == 260 * MiB  # 180 + 10 MiB free tail + 70 newly mapped
    stats = sim.memory_stats()
    assert stats["num_alloc_retries"] == 1 and stats["num_device_free"] == 2


def test_garbage_collection_frees_old_cached_segments_above_the_threshold():
    sim = make("garbage_collection_threshold:0.5", cap_bytes=1000 * MiB)
    sim.free(sim.malloc(300 * MiB))
    sim.free(sim.malloc(400 * MiB))  # 700 MiB cached, above 500
    sim.malloc(450 * MiB)  # nothing fits: GC frees cached segments older than the average age
    assert sim.memory_stats()["num_alloc_retries"] == 0
    sizes = sorted(s["total_size"] // MiB for s in sim.snapshot()["segments"])
    assert sizes == [400, 450]  # the older 300 MiB segment went, the younger 400 stayed


def test_oom_message_mirrors_torch():
    sim = make(cap_bytes=1100 * MiB)
    sim.free(sim.malloc(1000 * MiB))
    parts = [sim.malloc(100 * MiB) for _ in range(10)]
    for p in parts[::2]:
        sim.free(p)
    with pytest.raises(OutOfMemoryError) as info:
        sim.malloc(200 * MiB)
    text = str(info.value)
    assert text.startswith("CUDA out of memory. Tried to allocate 200.00 MiB. GPU 0 has a total")
    assert "500.00 MiB is reserved by PyTorch but unallocated" in text
    assert "expandable_segments:True to avoid fragmentation" in text


def test_snapshot_has_torchs_keys():
    sim = make()
    sim.malloc(3 * MiB)
    snap = sim.snapshot()
    assert {"segments", "device_traces", "allocator_settings"} <= set(snap)
    seg = snap["segments"][0]
    assert {
        "address",
        "total_size",
        "stream",
        "segment_type",
        "allocated_size",
        "active_size",
        "requested_size",
        "is_expandable",
        "blocks",
    } <= set(seg)
    assert {"address", "size", "requested_size", "state"} <= set(seg["blocks"][0])
    assert seg["blocks"][0]["requested_size"] == 3 * MiB


def test_free_of_an_unknown_pointer_is_an_error():
    with pytest.raises(KeyError):
        make().free(0x1234)


def test_empty_cache_releases_an_expandable_segment_that_is_entirely_free():
    sim = make("expandable_segments:True")
    sim.free(sim.malloc(100 * MiB))
    sim.empty_cache()
    assert sim.memory_reserved() == 0 and sim.snapshot()["segments"] == []
    sim.malloc(100 * MiB)  # a new segment, at addresses of its own
    assert sim.memory_reserved() == 100 * MiB and len(sim.expandable_segments) == 1


@pytest.mark.parametrize(
    "conf",
    ["", "expandable_segments:True", "max_split_size_mb:64", "garbage_collection_threshold:0.7"],
)
@pytest.mark.parametrize("seed", range(6))
def test_invariants_hold_on_random_traces(conf, seed):
    """Whatever the trace: segments tile their blocks, reserved = sum of segments, allocated =
    sum of allocated blocks, and the cap is never exceeded."""
    from labsupport.scenarios.oom_despite_free_memory.workload import random_trace

    cap = 1024 * MiB
    # torch checks the cap against the request's segment size; an expandable segment maps whole
    # 20 MiB pages, so it may end up to one page over
    limit = cap + (20 * MiB if "expandable" in conf else 0)
    sim = make(conf, cap_bytes=cap)
    live, ooms = {}, 0
    for op in random_trace(seed, n_ops=150, cap_bytes=cap):
        try:
            if op.kind == "alloc":
                live[op.name] = sim.malloc(op.size_bytes)
            elif op.kind == "free":
                if op.name in live:  # not when its allocation ran out of memory
                    sim.free(live.pop(op.name))
            else:
                sim.empty_cache()
        except OutOfMemoryError:
            ooms += 1
        snap = sim.snapshot()
        for s in snap["segments"]:
            ends = [b["address"] + b["size"] for b in s["blocks"]]
            assert [b["address"] for b in s["blocks"][1:]] == ends[:-1]
            assert ends[-1] - s["address"] == s["total_size"]
            states = [b["state"] for b in s["blocks"]]
            assert "inactive,inactive" not in ",".join(states)  # free neighbours merged
        blocks = [b for s in snap["segments"] for b in s["blocks"]]
        reserved = sum(s["total_size"] for s in snap["segments"])
        assert reserved == sim.memory_reserved() <= limit
        assert sum(b["size"] for b in blocks if b["state"] == "active_allocated") == (
            sim.memory_allocated()
        )
        assert sorted(live.values()) == sorted(sim.by_ptr)
    assert sim.memory_stats()["num_ooms"] == ooms
