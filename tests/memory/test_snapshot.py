"""Snapshot summary and plots, on hand-made snapshots in torch's format."""

import pytest

from labsupport.memory.snapshot import (
    parse_oom_message,
    plot_segment_maps,
    plot_segments,
    summarize,
)

MiB = 1 << 20


def seg(address, blocks, *, expandable=False, kind="large"):
    """A segment dict as torch.cuda.memory._snapshot() writes it; blocks = [(MiB, state)]."""
    out, offset = [], 0
    for size, state in blocks:
        out.append(
            {
                "address": address + offset,
                "size": size * MiB,
                "requested_size": size * MiB,
                "state": state,
                "frames": [],
            }
        )
        offset += size * MiB
    allocated = sum(b["size"] for b in out if b["state"] == "active_allocated")
    return {
        "device": 0,
        "address": address,
        "total_size": offset,
        "allocated_size": allocated,
        "active_size": allocated,
        "stream": 0,
        "segment_type": kind,
        "is_expandable": expandable,
        "blocks": out,
    }


A, F, P = "active_allocated", "inactive", "active_pending_free"
SNAP = {
    "segments": [
        seg(0x1000000000, [(100, F), (100, A), (100, F), (100, A), (60, F)]),  # fragmented
        seg(0x2000000000, [(20, F)]),  # whole free segment: releasable
        seg(0x3000000000, [(30, A), (40, F), (10, P)], expandable=True),
        seg(0x4000000000, [(1, A), (1, F)], kind="small"),
    ]
}


def test_totals():
    s = summarize(SNAP)
    assert s.reserved_bytes == 562 * MiB
    assert s.allocated_bytes == 231 * MiB
    assert s.reserved_unallocated_bytes == 331 * MiB  # pending-free counts as unallocated
    assert s.largest_free_block_bytes == 100 * MiB
    assert s.releasable_bytes == 20 * MiB


def test_inactive_split_excludes_whole_segments_and_expandable_ones():
    s = summarize(SNAP)
    assert s.inactive_split_bytes == (260 + 1) * MiB
    assert [x.inactive_split_bytes // MiB for x in s.segments] == [260, 0, 0, 1]


def test_per_segment_figures():
    first = summarize(SNAP).segments[0]
    assert (
        first.total_bytes // MiB,
        first.free_bytes // MiB,
        first.largest_free_bytes // MiB,
        first.n_blocks,
        first.n_free_blocks,
    ) == (460, 260, 100, 5, 3)


def test_adjacent_free_blocks_count_as_one_hole():
    s = summarize({"segments": [seg(0, [(30, F), (50, F), (10, A)])]})
    assert s.largest_free_block_bytes == 80 * MiB


def test_empty_snapshot():
    s = summarize({"segments": []})
    assert (s.reserved_bytes, s.largest_free_block_bytes) == (0, 0)


@pytest.mark.parametrize(
    "text, tried, allowed, unallocated",
    [
        (
            "CUDA out of memory. Tried to allocate 200.00 MiB. GPU 0 has a total capacity of "
            "79.19 GiB of which 77.85 GiB is free. Including non-PyTorch memory, this process has "
            "1.50 GiB memory in use. 1.07 GiB allowed; Of the allocated memory 500.00 MiB is "
            "allocated by PyTorch, and 500.00 MiB is reserved by PyTorch but unallocated. If "
            "reserved but unallocated memory is large try setting "
            "PYTORCH_ALLOC_CONF=expandable_segments:True to avoid fragmentation.",
            200 * MiB,
            round(1.07 * 1024 * MiB),
            500 * MiB,
        ),
        (
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
            "79.15 GiB of which 1.21 GiB is free. Of the allocated memory 70.11 GiB is allocated "
            "by PyTorch, and 0 bytes is reserved by PyTorch but unallocated.",
            2048 * MiB,
            None,
            0,
        ),
    ],
)
def test_parse_oom_message(text, tried, allowed, unallocated):
    m = parse_oom_message(text)
    assert (m.tried_bytes, m.allowed_bytes, m.reserved_unallocated_bytes) == (
        tried,
        allowed,
        unallocated,
    )


def test_parse_oom_message_of_something_else():
    assert parse_oom_message("RuntimeError: CUDA error: device-side assert triggered") is None


def test_plot_returns_a_figure_with_one_bar_row_per_segment_plus_the_request():
    from matplotlib.figure import Figure

    fig = plot_segments(SNAP, request_bytes=200 * MiB)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == len(SNAP["segments"]) + 1
    labels = [t.get_text() for t in ax.texts]
    assert "200" in labels and "100" in labels  # sizes written in MiB


def test_plot_of_an_empty_snapshot_and_side_by_side():
    assert plot_segments({"segments": []}).axes
    fig = plot_segment_maps(
        {"default": SNAP, "fixed": {"segments": SNAP["segments"][:1]}}, request_bytes=50 * MiB
    )
    assert [ax.get_title().split(":")[0] for ax in fig.axes if ax.get_title()] == [
        "default",
        "fixed",
    ]
