"""A paged KV cache: fixed-size blocks, a free list, one block table per request.

    >>> from labsupport.serving.kv_cache import BlockAllocator
    >>> alloc = BlockAllocator(num_blocks=4, block_size=16)
    >>> alloc.allocate("req-1", num_tokens=20)   # 20 tokens need 2 blocks
    [0, 1]
    >>> alloc.num_used, alloc.usage
    (2, 0.5)
    >>> alloc.free("req-1")
    2

As in vLLM, memory for keys and values is carved into blocks of `block_size` token slots. A
request owns a list of blocks (its block table); token position p lives in slot
`table[p // block_size] * block_size + p % block_size`. Blocks are taken from the free list
when a request is prefilled and whenever decoding crosses a block boundary, and go back on
finish or abort. An allocation that cannot be met takes nothing and raises `OutOfBlocks`, so the
scheduler can queue or preempt. A request that ends without `free` leaks its blocks: exactly the
slow drift a leak causes, visible as `num_used > 0` when idle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

import torch

from labsupport.serving.model import ModelConfig


class OutOfBlocks(RuntimeError):
    """Not enough free blocks; nothing was allocated."""


class BlockAllocator:
    def __init__(self, num_blocks: int, block_size: int):
        if num_blocks < 1 or block_size < 1:
            raise ValueError(
                f"need num_blocks >= 1 and block_size >= 1, got {num_blocks}, {block_size}"
            )
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._free: deque[int] = deque(range(num_blocks))
        self._tables: dict[Hashable, list[int]] = {}
        self.allocated_total = 0
        self.freed_total = 0
        self.peak_used = 0

    # -- queries -------------------------------------------------------------------------
    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_blocks - len(self._free)

    @property
    def usage(self) -> float:
        """Fraction of blocks in use, 0..1 (what `vllm:kv_cache_usage_perc` reports)."""
        return self.num_used / self.num_blocks

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def extra_blocks_for(self, owner: Hashable, num_tokens: int) -> int:
        """How many more blocks `owner` needs to hold `num_tokens` tokens."""
        have = len(self._tables.get(owner, ()))
        return max(0, self.blocks_for(num_tokens) - have)

    def can_allocate(self, owner: Hashable, num_tokens: int) -> bool:
        return self.extra_blocks_for(owner, num_tokens) <= len(self._free)

    def block_table(self, owner: Hashable) -> list[int]:
        return list(self._tables.get(owner, ()))

    def owners(self) -> list[Hashable]:
        return list(self._tables)

    def slot(self, owner: Hashable, position: int) -> int:
        table = self._tables[owner]
        return table[position // self.block_size] * self.block_size + position % self.block_size

    def slots(self, owner: Hashable, start: int, stop: int) -> list[int]:
        table, bs = self._tables[owner], self.block_size
        return [table[p // bs] * bs + p % bs for p in range(start, stop)]

    # -- mutations -----------------------------------------------------------------------
    def allocate(self, owner: Hashable, num_tokens: int) -> list[int]:
        """Grow `owner`'s table to hold `num_tokens` tokens; all or nothing. Returns the table."""
        need = self.extra_blocks_for(owner, num_tokens)
        if need > len(self._free):
            raise OutOfBlocks(
                f"{owner!r} needs {need} more block(s) for {num_tokens} tokens, "
                f"{len(self._free)} of {self.num_blocks} free"
            )
        table = self._tables.setdefault(owner, [])
        for _ in range(need):
            table.append(self._free.popleft())
        self.allocated_total += need
        self.peak_used = max(self.peak_used, self.num_used)
        return list(table)

    def free(self, owner: Hashable) -> int:
        """Return all of `owner`'s blocks to the free list; returns how many (0 if none)."""
        table = self._tables.pop(owner, [])
        self._free.extend(table)
        self.freed_total += len(table)
        return len(table)

    def check_invariants(self) -> None:
        """Every block is either free or owned by exactly one request."""
        owned = [b for t in self._tables.values() for b in t]
        every = owned + list(self._free)
        if sorted(every) != list(range(self.num_blocks)):
            raise AssertionError(
                f"block accounting broken: {len(owned)} owned + {len(self._free)} free "
                f"!= {self.num_blocks}, or a block is held twice"
            )


class PagedKVCache:
    """Key and value storage for every layer, addressed by slot, plus its allocator.

    `k[layer]` has shape [num_blocks * block_size, n_heads, head_dim]; so has `v[layer]`.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        num_blocks: int,
        block_size: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        self.allocator = BlockAllocator(num_blocks, block_size)
        shape = (cfg.n_layers, num_blocks * block_size, cfg.n_heads, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)

    @property
    def block_size(self) -> int:
        return self.allocator.block_size

    @property
    def num_blocks(self) -> int:
        return self.allocator.num_blocks

    @property
    def mem_bytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()
