"""Blocks, pools, counters and addresses: the data the allocator simulator works on.

    >>> from labsupport.memory._blocks import AddressSpace
    >>> vas = AddressSpace()
    >>> a, b = vas.reserve(3 << 20), vas.reserve(1 << 20)     # 2 MiB-aligned, first fit
    >>> b - a == 4 << 20
    True

Mirrors struct Block / BlockPool of c10/cuda/CUDACachingAllocator.cpp: a Block is a piece of a
segment (prev/next link the pieces of one segment), a BlockPool holds the free blocks ordered
by (size, address) for best fit, plus the unmapped ranges of expandable segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from labsupport.memory.config import MiB

if TYPE_CHECKING:
    from labsupport.memory._expandable import ExpandableSegment

_MALLOC_BASE = 0x7F0000000000  # where simulated cudaMalloc addresses start


@dataclass(eq=False)
class Block:
    ptr: int
    size: int
    pool: BlockPool
    expandable: ExpandableSegment | None = None
    requested_size: int = 0
    allocated: bool = False
    mapped: bool = True
    prev: Block | None = field(default=None, repr=False)
    next: Block | None = field(default=None, repr=False)
    gc_count_base: int = 0

    def is_split(self) -> bool:
        return self.prev is not None or self.next is not None

    def gc_count(self) -> int:
        return self.pool.get_free_blocks_call_count - self.gc_count_base

    def splice(self, before: Block | None, after: Block | None) -> None:
        if before:
            before.next = self
        self.prev = before
        if after:
            after.prev = self
        self.next = after


@dataclass(eq=False)
class BlockPool:
    is_small: bool
    blocks: list[Block] = field(default_factory=list)  # free, mapped
    unmapped: list[Block] = field(default_factory=list)  # expandable address space, not backed
    get_free_blocks_call_count: int = 0

    def insert(self, block: Block) -> None:
        block.gc_count_base = self.get_free_blocks_call_count
        self.blocks.append(block)

    def by_size(self) -> list[Block]:
        return sorted(self.blocks, key=lambda b: (b.size, b.ptr))


class Stat:
    __slots__ = ("current", "peak", "allocated", "freed")

    def __init__(self):
        self.current = self.peak = self.allocated = self.freed = 0

    def add(self, amount: int) -> None:
        self.current += amount
        if amount >= 0:
            self.peak = max(self.peak, self.current)
            self.allocated += amount
        else:
            self.freed -= amount


class AddressSpace:
    """First-fit, 2 MiB-aligned addresses for simulated cudaMalloc segments."""

    def __init__(self):
        self.used: dict[int, int] = {}

    def reserve(self, size: int) -> int:
        size = -(-size // (2 * MiB)) * (2 * MiB)
        ptr = _MALLOC_BASE
        for start in sorted(self.used):
            if start - ptr >= size:
                break
            ptr = max(ptr, start + self.used[start])
        self.used[ptr] = size
        return ptr

    def release(self, ptr: int) -> None:
        del self.used[ptr]
