"""The allocator simulator's state: statistics, freeing, merging and releasing blocks, snapshots.

    >>> from labsupport.memory.simulator import CachingAllocatorSim, MiB
    >>> sim = CachingAllocatorSim()
    >>> ptr = sim.malloc(3 * MiB)
    >>> [s["total_size"] // MiB for s in sim.snapshot()["segments"]]   # 1-10 MiB -> 20 MiB segment
    [20]

The block graph and its operations follow c10/cuda/CUDACachingAllocator.cpp: free_block,
try_merge_blocks, release_block, release_blocks, snapshot (expandable segments: _expandable.py);
the snapshot dict follows torch/csrc/cuda/memory_snapshot.cpp.
"""

from __future__ import annotations

from labsupport.memory._blocks import AddressSpace, Block, BlockPool, Stat
from labsupport.memory._expandable import ExpandableSegment, ExpandableSegmentsMixin
from labsupport.memory.config import AllocatorConfig

_POOLS = ("all", "large_pool", "small_pool")
_STATS = (
    "allocation",
    "segment",
    "active",
    "inactive_split",
    "allocated_bytes",
    "reserved_bytes",
    "active_bytes",
    "inactive_split_bytes",
    "requested_bytes",
)


class AllocatorState(ExpandableSegmentsMixin):
    """The allocator's data: pools, live blocks, statistics; the C++ helpers that free,
    merge and release blocks; and what torch.cuda reports (snapshot, memory_stats)."""

    def __init__(
        self, config: AllocatorConfig, *, total_bytes: int, context_bytes: int, record_history: bool
    ):
        self.config = config
        self.total_bytes = total_bytes
        self.context_bytes = context_bytes
        self.record_history = record_history
        self.large, self.small = BlockPool(is_small=False), BlockPool(is_small=True)
        self.by_ptr: dict[int, Block] = {}
        self.vas = AddressSpace()
        self.expandable_segments: list[ExpandableSegment] = []
        self.expandable_created = 0
        self.total_allocated_memory = 0  # bytes backed by device memory (cudaMalloc + mapped)
        self.other_processes: dict[int, int] = {}  # pid -> bytes other processes hold on the card
        self.allowed_memory_maximum = 0
        self.set_fraction = False
        self.stats = {name: {pool: Stat() for pool in _POOLS} for name in _STATS}
        self.oversize_allocations, self.oversize_segments = Stat(), Stat()
        self.num_alloc_retries = self.num_ooms = self.num_device_alloc = self.num_device_free = 0
        self.traces: list[dict] = []

    # ---- bookkeeping ---------------------------------------------------------------------------
    def stat(self, name: str, pool: BlockPool, amount: int) -> None:
        self.stats[name]["all"].add(amount)
        self.stats[name]["small_pool" if pool.is_small else "large_pool"].add(amount)

    def current(self, name: str) -> int:
        return self.stats[name]["all"].current

    def trace(self, action: str, addr: int, size: int, *, key: str = "addr") -> None:
        if self.record_history:
            self.traces.append(
                {
                    "action": action,
                    key: addr,
                    "size": size,
                    "stream": 0,
                    "time_us": len(self.traces),
                    "frames": [],
                }
            )

    def recount_inactive_split(self) -> None:
        """inactive_split: free pieces of split cudaMalloc segments (expandable ones excluded)."""
        for pool, label in ((self.large, "large_pool"), (self.small, "small_pool")):
            pieces = [b for b in pool.blocks if b.is_split() and b.expandable is None]
            for name, value in (
                ("inactive_split", len(pieces)),
                ("inactive_split_bytes", sum(b.size for b in pieces)),
            ):
                self.stats[name][label].add(value - self.stats[name][label].current)
        for name in ("inactive_split", "inactive_split_bytes"):
            total = sum(self.stats[name][p].current for p in ("large_pool", "small_pool"))
            self.stats[name]["all"].add(total - self.stats[name]["all"].current)

    def device_free_bytes(self) -> int:
        others = sum(self.other_processes.values())
        return max(0, self.total_bytes - self.context_bytes - self.total_allocated_memory - others)

    # ---- freeing, merging, releasing ---------------------------------------------------------
    def free_block(self, block: Block) -> None:
        self.trace("free_completed", block.ptr, block.requested_size)
        size, requested = block.size, block.requested_size
        for candidate in (block.prev, block.next):
            self.try_merge_blocks(block, candidate)
        block.pool.insert(block)
        for name, amount in (
            ("active", -1),
            ("active_bytes", -size),
            ("requested_bytes", -requested),
        ):
            self.stat(name, block.pool, amount)

    def try_merge_blocks(self, dst: Block, src: Block | None) -> int:
        if src is None or src.allocated or dst.mapped != src.mapped:
            return 0
        if dst.prev is src:
            dst.ptr = src.ptr
            dst.prev = src.prev
            if dst.prev:
                dst.prev.next = dst
        else:
            dst.next = src.next
            if dst.next:
                dst.next.prev = dst
        dst.size += src.size
        (dst.pool.blocks if src.mapped else dst.pool.unmapped).remove(src)
        return src.size

    def release_block(self, block: Block) -> None:
        """cudaFree of a whole free segment."""
        if block.expandable is not None:
            raise AssertionError("torch asserts here: release_block on an expandable segment")
        self.vas.release(block.ptr)
        self.total_allocated_memory -= block.size
        block.pool.blocks.remove(block)
        self.stat("segment", block.pool, -1)
        self.stat("reserved_bytes", block.pool, -block.size)
        if block.size >= self.config.max_split_size_bytes:
            self.oversize_segments.add(-1)
        self.num_device_free += 1
        self.trace("segment_free", block.ptr, block.size)

    def release_blocks(self, pool: BlockPool) -> None:
        to_unmap = []
        for block in pool.by_size():
            if block.expandable is not None:
                to_unmap.append(block)
            elif not block.is_split():
                self.release_block(block)
        for block in to_unmap:
            self.unmap_block(block)
            if not block.is_split() and not block.mapped:
                pool.unmapped.remove(block)
                self.expandable_segments.remove(block.expandable)

    # ---- what torch.cuda reports ---------------------------------------------------------------
    def snapshot(self) -> dict:
        """Same structure as torch.cuda.memory._snapshot()."""
        every = self.small.blocks + self.large.blocks + list(self.by_ptr.values())
        segments = []
        for head in every:
            if head.prev is not None and head.prev.mapped:
                continue  # not the first block of a contiguous mapped range
            blocks, block, address = [], head, head.ptr
            while block is not None and block.mapped:
                state = "active_allocated" if block.allocated else "inactive"
                blocks.append(
                    {
                        "address": address,
                        "size": block.size,
                        "requested_size": block.requested_size,
                        "state": state,
                        "frames": [],
                    }
                )
                address += block.size
                block = block.next
            allocated = sum(b["size"] for b in blocks if b["state"] == "active_allocated")
            segments.append(
                {
                    "device": 0,
                    "address": head.ptr,
                    "total_size": address - head.ptr,
                    "allocated_size": allocated,
                    "active_size": allocated,
                    "requested_size": sum(
                        b["requested_size"] for b in blocks if b["state"] == "active_allocated"
                    ),
                    "stream": 0,
                    "segment_type": "small" if head.pool.is_small else "large",
                    "segment_pool_id": (0, 0),
                    "is_expandable": head.expandable is not None,
                    "frames": [],
                    "blocks": blocks,
                }
            )
        segments.sort(key=lambda s: s["address"])
        self.trace("snapshot", 0, sum(s["active_size"] for s in segments))
        return {
            "segments": segments,
            "device_traces": [list(self.traces)],
            "allocator_settings": self.config.settings_dict(),
            "external_annotations": [],
        }

    def memory_stats(self) -> dict:
        """Flat keys as torch.cuda.memory_stats(), e.g. 'reserved_bytes.all.current'."""
        self.recount_inactive_split()
        out: dict = {}
        for name, pools in self.stats.items():
            for pool, s in pools.items():
                for field_name in Stat.__slots__:
                    out[f"{name}.{pool}.{field_name}"] = getattr(s, field_name)
        for name, s in (
            ("oversize_allocations", self.oversize_allocations),
            ("oversize_segments", self.oversize_segments),
        ):
            for field_name in Stat.__slots__:
                out[f"{name}.{field_name}"] = getattr(s, field_name)
        max_split = self.config.settings_dict()["max_split_size"]
        out.update(
            num_alloc_retries=self.num_alloc_retries,
            num_ooms=self.num_ooms,
            num_sync_all_streams=0,
            num_device_alloc=self.num_device_alloc,
            num_device_free=self.num_device_free,
            max_split_size=max_split,
        )
        return dict(sorted(out.items()))

    def memory_reserved(self) -> int:
        return self.current("reserved_bytes")

    def memory_allocated(self) -> int:
        return self.current("allocated_bytes")

    def mem_get_info(self) -> tuple[int, int]:
        return self.device_free_bytes(), self.total_bytes
