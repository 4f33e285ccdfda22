"""Read a caching-allocator snapshot (torch.cuda.memory._snapshot() or the simulator's) and draw it.

    >>> from labsupport.memory.snapshot import summarize, plot_segments
    >>> used = {"address": 0, "size": 1 << 20, "requested_size": 1 << 20,
    ...         "state": "active_allocated"}
    >>> hole = {"address": 1 << 20, "size": 2 << 20, "requested_size": 0, "state": "inactive"}
    >>> snap = {"segments": [{"address": 0, "total_size": 3 << 20, "allocated_size": 1 << 20,
    ...                       "segment_type": "large", "blocks": [used, hole]}]}
    >>> s = summarize(snap)
    >>> s.reserved_unallocated_bytes >> 20, s.largest_free_block_bytes >> 20
    (2, 2)
    >>> fig = plot_segments(snap, request_bytes=3 << 20)   # a matplotlib Figure, nothing shown

Vocabulary (the OOM message's): reserved = bytes in all segments (what nvidia-smi counts as
used); allocated = bytes in blocks handed to tensors; reserved but unallocated = the difference;
a request fits only in ONE free block (or in a new segment under the cap), so the largest free
block is what matters, not the free total. Inactive split bytes are free pieces of segments that
still hold a tensor: empty_cache() cannot return them (torch excludes expandable segments).
Used in: lab 276.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MiB = 1 << 20
_UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_COLOURS = {
    "active_allocated": "#4c72b0",
    "inactive": "#f2c14e",
    "active_pending_free": "#c44e52",
    "request": "#55a868",
}


@dataclass(frozen=True)
class SegmentSummary:
    address: int
    segment_type: str
    is_expandable: bool
    total_bytes: int
    allocated_bytes: int
    largest_free_bytes: int
    inactive_split_bytes: int
    n_blocks: int
    n_free_blocks: int

    @property
    def free_bytes(self) -> int:
        return self.total_bytes - self.allocated_bytes


@dataclass(frozen=True)
class SnapshotSummary:
    segments: tuple[SegmentSummary, ...]
    reserved_bytes: int
    allocated_bytes: int
    largest_free_block_bytes: int
    inactive_split_bytes: int
    releasable_bytes: int  # whole free segments: what empty_cache() can hand back

    @property
    def reserved_unallocated_bytes(self) -> int:
        return self.reserved_bytes - self.allocated_bytes

    def describe(self) -> str:
        return (
            f"{len(self.segments)} segment(s): reserved {self.reserved_bytes / MiB:.1f} MiB, "
            f"allocated {self.allocated_bytes / MiB:.1f} MiB, reserved but unallocated "
            f"{self.reserved_unallocated_bytes / MiB:.1f} MiB, largest free block "
            f"{self.largest_free_block_bytes / MiB:.1f} MiB, inactive split "
            f"{self.inactive_split_bytes / MiB:.1f} MiB, releasable by empty_cache() "
            f"{self.releasable_bytes / MiB:.1f} MiB"
        )


def _free_runs(blocks: list[Mapping]) -> list[int]:
    """Sizes of contiguous runs of inactive blocks (torch coalesces them; older dumps may not)."""
    runs, current = [], 0
    for block in blocks:
        if block.get("state") == "inactive":
            current += block["size"]
        elif current:
            runs.append(current)
            current = 0
    return runs + ([current] if current else [])


def summarize(snapshot: Mapping) -> SnapshotSummary:
    """Per-segment and total figures of a snapshot dict (real or simulated)."""
    segments = []
    for seg in snapshot.get("segments", []):
        blocks = list(seg.get("blocks", []))
        allocated = sum(b["size"] for b in blocks if b.get("state") == "active_allocated")
        runs = _free_runs(blocks)
        expandable = bool(seg.get("is_expandable", False))
        split_free = sum(runs) if len(blocks) > 1 and not expandable else 0
        segments.append(
            SegmentSummary(
                address=seg.get("address", 0),
                segment_type=seg.get("segment_type", "large"),
                is_expandable=expandable,
                total_bytes=seg["total_size"],
                allocated_bytes=allocated,
                largest_free_bytes=max(runs, default=0),
                inactive_split_bytes=split_free,
                n_blocks=len(blocks),
                n_free_blocks=sum(b.get("state") == "inactive" for b in blocks),
            )
        )
    return SnapshotSummary(
        segments=tuple(segments),
        reserved_bytes=sum(s.total_bytes for s in segments),
        allocated_bytes=sum(s.allocated_bytes for s in segments),
        largest_free_block_bytes=max((s.largest_free_bytes for s in segments), default=0),
        inactive_split_bytes=sum(s.inactive_split_bytes for s in segments),
        releasable_bytes=sum(
            s.total_bytes for s in segments if s.n_blocks == s.n_free_blocks and not s.is_expandable
        ),
    )


@dataclass(frozen=True)
class OomMessage:
    tried_bytes: int
    capacity_bytes: int
    device_free_bytes: int
    allowed_bytes: int | None
    allocated_bytes: int
    reserved_unallocated_bytes: int


def parse_oom_message(text: str) -> OomMessage | None:
    """The numbers in a CUDA OOM message (to two decimals, as torch prints them)."""
    size = r"([\d.]+) (bytes|KiB|MiB|GiB)"

    def grab(pattern: str) -> int | None:
        match = re.search(pattern.replace("SIZE", size), text)
        return None if match is None else round(float(match[1]) * _UNITS[match[2]])

    tried = grab(r"Tried to allocate SIZE")
    if tried is None:
        return None
    return OomMessage(
        tried_bytes=tried,
        capacity_bytes=grab(r"total capacity of SIZE") or 0,
        device_free_bytes=grab(r"of which SIZE is free") or 0,
        allowed_bytes=grab(r"SIZE allowed;"),
        allocated_bytes=grab(r"Of the allocated memory SIZE is allocated") or 0,
        reserved_unallocated_bytes=grab(r"and SIZE is reserved by PyTorch but unallocated") or 0,
    )


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
        one = summarize({"segments": [seg]}).segments[0]
        kind = seg.get("segment_type", "") + (", expandable" if one.is_expandable else "")
        labels.append((y, f"{kind} {one.total_bytes / MiB:.0f} MiB"))
        ax.text(
            one.total_bytes / MiB + widest * 0.01,
            y,
            f"free {one.free_bytes / MiB:.0f} MiB, largest {one.largest_free_bytes / MiB:.0f}",
            va="center",
            fontsize=8,
        )
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
    total = summarize({"segments": segs})
    ax.set_title(
        title
        or f"reserved {total.reserved_bytes / MiB:.0f} MiB, allocated "
        f"{total.allocated_bytes / MiB:.0f} MiB, largest free block "
        f"{total.largest_free_block_bytes / MiB:.0f} MiB",
        fontsize=10,
    )
    ax.legend(
        handles=[
            Patch(facecolor=_COLOURS["active_allocated"], label="allocated"),
            Patch(facecolor=_COLOURS["inactive"], hatch="//", label="free (cached)"),
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
