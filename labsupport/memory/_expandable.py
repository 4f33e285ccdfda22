"""Expandable segments (expandable_segments:True) for the allocator simulator (see simulator.py).

    >>> from labsupport.memory.simulator import CachingAllocatorSim, MiB
    >>> from labsupport.memory.config import AllocatorConfig
    >>> sim = CachingAllocatorSim(AllocatorConfig.parse("expandable_segments:True"))
    >>> _ = sim.malloc(30 * MiB); sim.memory_reserved() // MiB      # whole 20 MiB pages
    40

From c10/cuda/CUDACachingAllocator.cpp, Note [Expandable Segments] and find_expandable_block,
map_block, unmap_block, try_allocate_expandable_block: a segment reserves address space for
1 1/8 of the card and maps physical pages at its end as it grows (2 MiB pages in the small
pool, 20 MiB in the large one); under memory pressure the pages lying wholly inside free
blocks are unmapped, and later growth first fills such gaps at the lowest address.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from labsupport.memory._blocks import Block
from labsupport.memory.config import MiB

if TYPE_CHECKING:
    from labsupport.memory._blocks import BlockPool

_EXPANDABLE_BASE = 0x100000000000  # below the simulated cudaMalloc range (0x7f...)


@dataclass(eq=False)
class ExpandableSegment:
    base: int
    page_bytes: int
    max_pages: int
    pages: set[int] = field(default_factory=set)

    @property
    def size(self) -> int:
        return self.page_bytes * self.max_pages


class ExpandableSegmentsMixin:
    """Methods of AllocatorState that manage expandable segments."""

    def find_expandable_block(self, pool: BlockPool, size: int) -> Block:
        def allocatable(b: Block | None) -> bool:
            return b is not None and not b.allocated

        def has_room(b: Block | None) -> bool:
            room = 0
            while room < size and allocatable(b):
                room += b.size
                b = b.next
            return room >= size

        for candidate in sorted(pool.unmapped, key=lambda b: b.ptr):
            if allocatable(candidate.prev):
                candidate = candidate.prev
            if has_room(candidate):
                return candidate
        page = 2 * MiB if pool.is_small else 20 * MiB  # kSmallBuffer / kLargeBuffer pages
        span = self.total_bytes + self.total_bytes // 8  # 1 1/8 of the card, as torch reserves
        self.expandable_created += 1  # never reuse a released segment's address range
        stride = 1 << (span - 1).bit_length()
        seg = ExpandableSegment(
            base=_EXPANDABLE_BASE + self.expandable_created * stride,
            page_bytes=page,
            max_pages=-(-span // page),
        )
        self.expandable_segments.append(seg)
        candidate = Block(ptr=seg.base, size=seg.size, pool=pool, expandable=seg, mapped=False)
        pool.unmapped.append(candidate)
        return candidate

    def map_block(self, to_map: Block, size: int) -> bool:
        seg = to_map.expandable
        begin = (to_map.ptr - seg.base) // seg.page_bytes
        end = -(-(to_map.ptr + size - seg.base) // seg.page_bytes)
        mapped = (end - begin) * seg.page_bytes
        if mapped == 0 or mapped > self.device_free_bytes():
            return False  # cuMemCreate out of memory
        seg.pages.update(range(begin, end))
        pool = to_map.pool
        pool.unmapped.remove(to_map)
        to_map.mapped = True
        if mapped < to_map.size:
            rest = Block(
                ptr=to_map.ptr + mapped,
                size=to_map.size - mapped,
                pool=pool,
                expandable=seg,
                mapped=False,
            )
            rest.splice(to_map, to_map.next)
            pool.unmapped.append(rest)
            to_map.size = mapped
        self.try_merge_blocks(to_map, to_map.prev)
        self.try_merge_blocks(to_map, to_map.next)
        pool.insert(to_map)
        self.total_allocated_memory += mapped
        self.stat("reserved_bytes", pool, mapped)
        self.num_device_alloc += 1
        self.trace("segment_map", to_map.ptr, mapped)
        return True

    def unmap_block(self, block: Block) -> None:
        """Unmap the pages lying wholly inside free block `block`; keep the edges mapped."""
        seg, pool = block.expandable, block.pool
        begin = -(-(block.ptr - seg.base) // seg.page_bytes)
        end = (block.ptr + block.size - seg.base) // seg.page_bytes
        if begin >= end:
            return
        start, length = seg.base + begin * seg.page_bytes, (end - begin) * seg.page_bytes
        pool.blocks.remove(block)
        if start > block.ptr:
            before = Block(ptr=block.ptr, size=start - block.ptr, pool=pool, expandable=seg)
            before.splice(block.prev, block)
            pool.insert(before)
        after_size = block.ptr + block.size - (start + length)
        if after_size > 0:
            after = Block(ptr=start + length, size=after_size, pool=pool, expandable=seg)
            after.splice(block, block.next)
            pool.insert(after)
        block.ptr, block.size, block.mapped = start, length, False
        self.try_merge_blocks(block, block.prev)
        self.try_merge_blocks(block, block.next)
        pool.unmapped.append(block)
        seg.pages.difference_update(range(begin, end))
        self.total_allocated_memory -= length
        self.stat("reserved_bytes", pool, -length)
        self.num_device_free += 1
        self.trace("segment_unmap", start, length)

    def try_allocate_expandable_block(self, pool: BlockPool, size: int) -> Block | None:
        candidate = self.find_expandable_block(pool, size)
        if not candidate.mapped and not self.map_block(candidate, min(candidate.size, size)):
            return None
        while candidate.size < size:
            following = candidate.next  # unmapped: map what is missing, merging backwards
            if not self.map_block(following, min(size - candidate.size, following.size)):
                return None
            candidate = following
        pool.blocks.remove(candidate)
        return candidate
