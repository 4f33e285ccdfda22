"""Snapshot rows and plots, on hand-made snapshots in torch's format."""

from labsupport.memory.snapshot import plot_segment_maps, plot_segments, segment_rows

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


def test_rows_list_every_block_in_address_order():
    rows = segment_rows({"segments": list(reversed(SNAP["segments"]))})
    assert [r["address"] for r in rows] == sorted(s["address"] for s in SNAP["segments"])
    assert rows[0]["blocks"] == [(100.0, F), (100.0, A), (100.0, F), (100.0, A), (60.0, F)]
    assert rows[2]["kind"] == "large, expandable" and rows[3]["kind"] == "small"
    assert [r["total_mib"] for r in rows] == [460.0, 20.0, 80.0, 2.0]


def test_the_package_computes_no_graded_figure():
    """Lab 276 grades the largest free block and reserved-but-unallocated memory: the answers
    live in tests/labs/truth, never in labsupport."""
    import labsupport.memory.snapshot as snapshot

    assert not hasattr(snapshot, "summarize") and not hasattr(snapshot, "parse_oom_message")


def test_plot_returns_a_figure_with_one_bar_row_per_segment_plus_the_request():
    from matplotlib.figure import Figure

    fig = plot_segments(SNAP, request_bytes=200 * MiB)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == len(SNAP["segments"]) + 1
    labels = [t.get_text() for t in ax.texts]
    assert "200" in labels and "100" in labels  # sizes written in MiB
    assert not any("largest" in t for t in labels + [ax.get_title()])  # nothing graded


def test_plot_of_an_empty_snapshot_and_side_by_side():
    assert plot_segments({"segments": []}).axes
    fig = plot_segment_maps(
        {"default": SNAP, "fixed": {"segments": SNAP["segments"][:1]}}, request_bytes=50 * MiB
    )
    assert [ax.get_title().split(":")[0] for ax in fig.axes if ax.get_title()] == [
        "default",
        "fixed",
    ]
