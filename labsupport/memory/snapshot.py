"""Draw a caching-allocator snapshot (torch.cuda.memory._snapshot() or the simulator's).

    >>> from labsupport.memory.snapshot import plot_segments, segment_rows
    >>> used = {"address": 0, "size": 1 << 20, "requested_size": 1 << 20,
    ...         "state": "active_allocated"}
    >>> hole = {"address": 1 << 20, "size": 2 << 20, "requested_size": 0, "state": "inactive"}
    >>> snap = {"segments": [{"address": 0, "total_size": 3 << 20, "allocated_size": 1 << 20,
    ...                       "segment_type": "large", "blocks": [used, hole]}]}
    >>> segment_rows(snap)[0]["blocks"]
    [(1.0, 'active_allocated'), (2.0, 'inactive')]
    >>> fig = plot_segments(snap, request_bytes=3 << 20)   # a matplotlib Figure, nothing shown

Vocabulary (the OOM message's): reserved = bytes in all segments (what nvidia-smi counts as
used); allocated = bytes in blocks handed to tensors. A segment is one cudaMalloc (or one
growable segment's mapped range); its blocks tile it in address order, each
"active_allocated" (a tensor holds it), "active_pending_free" (freed, waiting for another
stream's work) or "inactive" (free). The drawing shows the blocks and their sizes; reading
them is the learner's job, so nothing here adds them up into a figure a lab grades.
Used in: lab 276.
"""

from __future__ import annotations

from collections.abc import Mapping

MiB = 1 << 20
_COLOURS = {
    "active_allocated": "#4c72b0",
    "inactive": "#f2c14e",
    "active_pending_free": "#c44e52",
    "request": "#55a868",
}


def segment_rows(snapshot: Mapping) -> list[dict]:
    """One row per segment, in address order: its kind, total MiB and (MiB, state) per block."""
    rows = []
    for seg in sorted(snapshot.get("segments", []), key=lambda s: s.get("address", 0)):
        rows.append(
            {
                "address": seg.get("address", 0),
                "kind": seg.get("segment_type", "large")
                + (", expandable" if seg.get("is_expandable") else ""),
                "total_mib": seg["total_size"] / MiB,
                "blocks": [(b["size"] / MiB, b.get("state", "")) for b in seg.get("blocks", [])],
            }
        )
    return rows


def plot_segments(
    snapshot: Mapping,
    *,
    request_bytes: int | None = None,
    title: str = "",
    ax=None,
    max_segments: int = 40,
):
    """One horizontal bar per segment, blocks coloured by state and labelled in MiB; the
    requested size drawn on top for comparison. Returns the Figure (never calls show())."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    segs = sorted(snapshot.get("segments", []), key=lambda s: -s["total_size"])[:max_segments]
    segs.sort(key=lambda s: s.get("address", 0))
    rows = len(segs) + (1 if request_bytes else 0)
    if ax is None:
        fig = Figure(figsize=(9, 1.2 + 0.45 * max(rows, 1)), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    widest = max([s["total_size"] for s in segs] + [request_bytes or 0, MiB]) / MiB
    labels = []
    for row, seg in enumerate(segs):
        y = len(segs) - 1 - row  # first segment on top, the request above them all
        start = seg.get("address", 0)
        for block in seg.get("blocks", []):
            x, w = (block["address"] - start) / MiB, block["size"] / MiB
            free = block.get("state") == "inactive"
            ax.broken_barh(
                [(x, w)],
                (y - 0.35, 0.7),
                facecolors=_COLOURS.get(block.get("state"), "#999999"),
                edgecolor="white",
                hatch="//" if free else None,
            )
            if w >= widest * 0.045:
                ax.text(
                    x + w / 2,
                    y,
                    f"{w:.0f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if free else "white",
                )
        kind = seg.get("segment_type", "") + (", expandable" if seg.get("is_expandable") else "")
        labels.append((y, f"{kind} {seg['total_size'] / MiB:.0f} MiB"))
    if request_bytes:
        ax.broken_barh(
            [(0, request_bytes / MiB)], (len(segs) - 0.35, 0.7), facecolors=_COLOURS["request"]
        )
        ax.text(
            request_bytes / MiB / 2,
            len(segs),
            f"{request_bytes / MiB:.0f}",
            ha="center",
            va="center",
            fontsize=8,
            color="white",
        )
        labels.append((len(segs), "the request"))
    ax.set_yticks([y for y, _ in labels], [text for _, text in labels], fontsize=8)
    ax.set_ylim(-0.7, rows - 0.3)
    ax.set_xlim(0, widest * 1.25)
    ax.set_xlabel("offset inside the segment (MiB)")
    reserved = sum(seg["total_size"] for seg in segs)
    ax.set_title(title or f"{len(segs)} segment(s), {reserved / MiB:.0f} MiB reserved", fontsize=10)
    ax.legend(
        handles=[
            Patch(facecolor=_COLOURS["active_allocated"], label="allocated"),
            Patch(facecolor=_COLOURS["inactive"], hatch="//", label="free (cached)"),
            Patch(facecolor=_COLOURS["active_pending_free"], label="freed, pending"),
            Patch(facecolor=_COLOURS["request"], label="the request"),
        ],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
    )
    return fig


def plot_segment_maps(snapshots: Mapping[str, Mapping], *, request_bytes: int | None = None):
    """Several segment maps stacked, one per labelled snapshot (e.g. default vs fixed)."""
    from matplotlib.figure import Figure

    heights = [
        1.5 + len(s.get("segments", [])) + (1 if request_bytes else 0) for s in snapshots.values()
    ]
    fig = Figure(figsize=(9, 0.45 * sum(heights) + 0.8), layout="constrained")
    axes = fig.subplots(len(snapshots), 1, height_ratios=heights, squeeze=False)[:, 0]
    for ax, (label, snap) in zip(axes, snapshots.items(), strict=True):
        plot_segments(snap, request_bytes=request_bytes, ax=ax)
        ax.set_title(f"{label}: {ax.get_title()}", fontsize=10)
    return fig
