"""A CPU stand-in for PyTorch's CUDA caching allocator, rule for rule, with torch's snapshot format.

    >>> from labsupport.memory.simulator import CachingAllocatorSim, MiB
    >>> sim = CachingAllocatorSim()                      # default settings, an 80 GB card
    >>> sim.set_per_process_memory_fraction(1100 * MiB / sim.total_bytes)
    >>> sim.free(sim.malloc(1000 * MiB))                 # one 1000 MiB segment, now cached
    >>> parts = [sim.malloc(100 * MiB) for _ in range(10)]   # carved out of that segment
    >>> for p in parts[::2]: sim.free(p)                 # five 100 MiB holes
    >>> sim.malloc(200 * MiB)                            # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labsupport.memory.simulator.OutOfMemoryError: CUDA out of memory. Tried to allocate 200.00...

Every rule below is taken from c10/cuda/CUDACachingAllocator.cpp (pytorch/pytorch main, read
2026-11; names in brackets are the C++ functions):
- sizes round up to 512 B, kMinBlockSize [round_size], optionally roundup_power2_divisions;
- requests <= 1 MiB use the small pool, packed in 2 MiB segments; larger ones the large pool:
  < 10 MiB get a 20 MiB segment, larger ones exactly their size rounded to 2 MiB
  [get_pool, get_allocation_size];
- best fit: the smallest cached block >= the request, ties by address [get_free_block]; a block
  >= max_split_size never serves a request below it, and serves a request above it only if at
  most max_non_split_rounding (20 MiB) larger;
- split the found block if the remainder is >= 512 B (small pool or expandable segments) or,
  in the large pool, if the request is < max_split_size and the remainder > 1 MiB [should_split];
- on free, merge with free neighbours [free_block, try_merge_blocks];
- a new segment is refused when reserved + segment size > the per-process cap
  (fraction x total memory) [alloc_block]; then torch frees cached oversize blocks
  [release_available_cached_blocks], then every whole free segment [release_cached_blocks],
  then retries once, then raises OutOfMemoryError with the message below;
- empty_cache() releases whole free segments only [release_cached_blocks];
- expandable_segments:True: one segment per pool reserves 1 1/8 x total of address space and maps
  pages at its end (2 MiB pages in the small pool, 20 MiB in the large pool); under pressure the
  pages lying wholly inside free blocks are unmapped, then the segment grows again
  [find_expandable_block, map_block, unmap_block];
- garbage_collection_threshold frees old whole free segments once reserved > threshold x cap;
- other processes on the card (`other_processes`, pid -> bytes) take device memory: cudaMalloc
  fails when the card has no room, whatever the cap;
- the OutOfMemoryError text is torch 2.13's (the strings of its libc10_cuda.so; the same text
  as c10/cuda/CUDACachingAllocator.cpp on main): the card's free memory, one line per process
  on the card (reportProcessMemoryInfo), the cap, and the advice to set
  PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True.
Not modelled: several streams, CUDA graphs / private pools, cross-stream events, IPC,
throw_on_cudamalloc_oom (pytorch#179473).
Used in: lab 276.
"""

from __future__ import annotations

from collections.abc import Mapping

from labsupport.memory._state import AllocatorState, Block, BlockPool
from labsupport.memory.config import SIZE_MAX, AllocatorConfig, MiB, format_size

kMinBlockSize = 512
kSmallSize = 1 * MiB
kSmallBuffer = 2 * MiB
kMinLargeAlloc = 10 * MiB
kRoundLarge = 2 * MiB
kLargeBuffer = 20 * MiB
H100_TOTAL_BYTES = 81090 * MiB  # what torch reports for an H100 80GB HBM3 (79.19 GiB)

__all__ = ["CachingAllocatorSim", "OutOfMemoryError", "MiB", "H100_TOTAL_BYTES"]


class OutOfMemoryError(RuntimeError):
    """Raised like torch.OutOfMemoryError, with the same message text."""

    def __init__(self, message: str, *, requested_bytes: int):
        super().__init__(message)
        self.requested_bytes = requested_bytes


def round_size(size: int, cfg: AllocatorConfig) -> int:
    if size < kMinBlockSize:
        return kMinBlockSize
    divisions = cfg.divisions_for(size)
    if divisions > 1 and size > kMinBlockSize * divisions:
        return _roundup_power2_next_division(size, divisions)
    return kMinBlockSize * ((size + kMinBlockSize - 1) // kMinBlockSize)


def _roundup_power2_next_division(size: int, divisions: int) -> int:
    if size & (size - 1) == 0:
        return size
    floor = 1 << (size.bit_length() - 1)
    step = floor >> (divisions.bit_length() - 1)
    if step == 0:
        return floor << 1
    rounded = size & ~(step - 1)
    return size if rounded == size else rounded + step


def get_allocation_size(size: int) -> int:
    if size <= kSmallSize:
        return kSmallBuffer
    if size < kMinLargeAlloc:
        return kLargeBuffer
    return kRoundLarge * ((size + kRoundLarge - 1) // kRoundLarge)


class CachingAllocatorSim(AllocatorState):
    """One device's caching allocator. `malloc` returns an address; `free` takes it back."""

    def __init__(
        self,
        config: AllocatorConfig | None = None,
        *,
        total_bytes: int = H100_TOTAL_BYTES,
        context_bytes: int = 0,
        record_history: bool = False,
        device_name: str = "",
        pid: int = 0,
    ):
        super().__init__(
            config or AllocatorConfig(),
            total_bytes=total_bytes,
            context_bytes=context_bytes,
            record_history=record_history,
        )
        self.device_name = device_name or "simulated caching allocator (no GPU)"
        self.pid = pid  # this process, as the OOM message's process lines name it
        if self.config.per_process_memory_fraction is not None:  # PYTORCH_ALLOC_CONF, torch 2.13
            self.set_per_process_memory_fraction(self.config.per_process_memory_fraction)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **kwargs) -> CachingAllocatorSim:
        """A fresh process's allocator, configured from PYTORCH_ALLOC_CONF / ..._CUDA_... in env."""
        torch_version = kwargs.pop("torch_version", "")
        return cls(AllocatorConfig.from_env(env, torch_version=torch_version), **kwargs)

    # ---- public API, mirroring torch.cuda -------------------------------------------------
    def set_per_process_memory_fraction(self, fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"invalid fraction: {fraction}. Please set within (0, 1).")
        self.allowed_memory_maximum = int(fraction * float(self.total_bytes))
        self.set_fraction = True

    def malloc(self, orig_size: int) -> int:
        cfg = self.config
        if cfg.backend != "native":
            raise NotImplementedError("backend:cudaMallocAsync is not modelled by the simulator")
        if orig_size > self.total_bytes * 1_000_000:  # torch: "more than 1EB"; keeps ints sane
            raise OutOfMemoryError(
                "CUDA out of memory. Tried to allocate more than 1EB memory.",
                requested_bytes=orig_size,
            )
        size = round_size(orig_size, cfg)
        pool = self.small if size <= kSmallSize else self.large
        alloc_size = get_allocation_size(size)
        block = self._get_free_block(pool, size)
        if block is None:
            if self.set_fraction and cfg.garbage_collection_threshold > 0.0:
                self._garbage_collect_cached_blocks()
            block = (
                self._alloc_block(pool, size, alloc_size, retry=False)
                or (
                    self._release_available_cached_blocks(pool, size)
                    and self._alloc_block(pool, size, alloc_size, retry=False)
                )
                or (
                    self._release_cached_blocks()
                    and self._alloc_block(pool, size, alloc_size, retry=True)
                )
            )
        if not block:
            self._raise_oom(alloc_size, size)
        return self._alloc_found_block(block, size, orig_size, self._should_split(block, size))

    def free(self, ptr: int) -> None:
        block = self.by_ptr.pop(ptr, None)
        if block is None:
            raise KeyError(f"invalid device pointer: {ptr:#x}")
        block.allocated = False
        self.stat("allocation", block.pool, -1)
        self.stat("allocated_bytes", block.pool, -block.size)
        if block.size >= self.config.max_split_size_bytes:
            self.oversize_allocations.add(-1)
        self.trace("free_requested", block.ptr, block.requested_size)
        self.free_block(block)
        self.recount_inactive_split()

    def empty_cache(self) -> None:
        self._release_cached_blocks()
        self.recount_inactive_split()

    # ---- allocation path ---------------------------------------------------------------------
    def _get_free_block(self, pool: BlockPool, size: int) -> Block | None:
        cfg = self.config
        if self.set_fraction and cfg.garbage_collection_threshold > 0.0:
            pool.get_free_blocks_call_count += 1
        ordered = pool.by_size()
        it = next((k for k, b in enumerate(ordered) if b.size >= size), len(ordered))
        if it == len(ordered):
            return None
        if ordered[it].expandable is not None:
            if cfg.expandable_segments:
                # Best fit counts the unmapped tail an expandable block could still grow into.
                def grow(b: Block) -> int:
                    return b.size + (b.next.size if b.next and not b.next.mapped else 0)

                while (
                    ordered[it].expandable is not None
                    and it + 1 < len(ordered)
                    and grow(ordered[it + 1]) < grow(ordered[it])
                ):
                    it += 1
            else:
                it += 1
                while it < len(ordered) and ordered[it].expandable is not None:
                    it += 1
                if it == len(ordered):
                    return None
        block = ordered[it]
        max_split = cfg.max_split_size_bytes
        if size < max_split and block.size >= max_split:
            return None  # an oversize cached block never serves a smaller request
        if size >= max_split and block.size >= size + cfg.max_non_split_rounding_bytes:
            return None
        pool.blocks.remove(block)
        return block

    def _should_split(self, block: Block, size: int) -> bool:
        remaining = block.size - size
        if block.pool.is_small or self.config.expandable_segments:
            return remaining >= kMinBlockSize
        return size < self.config.max_split_size_bytes and remaining > kSmallSize

    def _alloc_found_block(self, block: Block, size: int, orig_size: int, split: bool) -> int:
        pool = block.pool
        if split:
            remaining = block
            block = Block(ptr=remaining.ptr, size=size, pool=pool, expandable=remaining.expandable)
            block.prev = remaining.prev
            if block.prev:
                block.prev.next = block
            block.next = remaining
            remaining.prev = block
            remaining.ptr += size
            remaining.size -= size
            pool.insert(remaining)
        block.allocated = True
        block.requested_size = orig_size
        self.by_ptr[block.ptr] = block
        for name, amount in (
            ("allocation", 1),
            ("allocated_bytes", block.size),
            ("active", 1),
            ("active_bytes", block.size),
            ("requested_bytes", orig_size),
        ):
            self.stat(name, pool, amount)
        if block.size >= self.config.max_split_size_bytes:
            self.oversize_allocations.add(1)
        self.trace("alloc", block.ptr, orig_size)
        self.recount_inactive_split()
        return block.ptr

    def _alloc_block(self, pool: BlockPool, size: int, alloc_size: int, *, retry: bool):
        if retry:
            self.num_alloc_retries += 1
        if self.set_fraction and self.total_allocated_memory + alloc_size > (
            self.allowed_memory_maximum
        ):
            return None
        if self.config.expandable_segments:
            return self.try_allocate_expandable_block(pool, size)
        if alloc_size > self.device_free_bytes():
            return None  # cudaMalloc itself fails: the card is full
        ptr = self.vas.reserve(alloc_size)
        self.total_allocated_memory += alloc_size
        block = Block(ptr=ptr, size=alloc_size, pool=pool)
        self.stat("segment", pool, 1)
        self.stat("reserved_bytes", pool, alloc_size)
        if alloc_size >= self.config.max_split_size_bytes:
            self.oversize_segments.add(1)
        self.num_device_alloc += 1
        self.trace("segment_alloc", ptr, alloc_size)
        return block

    def _release_available_cached_blocks(self, pool: BlockPool, size: int) -> bool:
        max_split = self.config.max_split_size_bytes
        if max_split == SIZE_MAX:
            return False
        key = max(size, max_split)
        ordered = pool.by_size()
        it = next((k for k, b in enumerate(ordered) if b.size >= key), len(ordered))
        if it < len(ordered):
            self.release_block(ordered[it])
            return True
        released = 0
        for block in reversed(ordered):  # largest first, while they are oversize
            if released >= key or block.size < max_split:
                break
            released += block.size
            self.release_block(block)
        return released >= key

    def _release_cached_blocks(self) -> bool:
        self.release_blocks(self.large)
        self.release_blocks(self.small)
        return True

    def _garbage_collect_cached_blocks(self) -> None:
        threshold = int(self.config.garbage_collection_threshold * self.allowed_memory_maximum)
        if self.total_allocated_memory <= threshold:
            return
        target = self.total_allocated_memory - threshold
        freeable = [b for b in self.large.blocks if not b.is_split()]
        total_age, count = sum(b.gc_count() for b in freeable), len(freeable)
        reclaimed, freed_one = 0, True
        while reclaimed < target and freed_one and count > 0:
            age_threshold = total_age / count
            freed_one = False
            for block in self.large.by_size():
                if not block.is_split() and block.gc_count() >= age_threshold:
                    freed_one = True
                    reclaimed += block.size
                    total_age -= block.gc_count()
                    count -= 1
                    self.release_block(block)

    def _raise_oom(self, alloc_size: int, size: int) -> None:
        self.recount_inactive_split()
        device_free = self.device_free_bytes()
        self.trace("oom", device_free, size, key="device_free")
        self.num_ooms += 1
        allocated = self.current("allocated_bytes")
        reserved = self.current("reserved_bytes")
        allowed = (
            f"{format_size(self.allowed_memory_maximum)} allowed; " if self.set_fraction else ""
        )
        processes = dict(self.other_processes)
        processes[self.pid] = self.context_bytes + reserved
        proc_info = "".join(
            f"Including non-PyTorch memory, this process has {format_size(used)} memory in use. "
            if pid == self.pid
            else f"Process {pid} has {format_size(used)} memory in use. "
            for pid, used in sorted(processes.items())
        )
        raise OutOfMemoryError(
            f"CUDA out of memory. Tried to allocate {format_size(alloc_size)}. GPU 0 has a total "
            f"capacity of {format_size(self.total_bytes)} of which {format_size(device_free)} is "
            f"free. {proc_info}"
            f"{allowed}Of the allocated memory {format_size(allocated)} is allocated by PyTorch, "
            f"and {format_size(reserved - allocated)} is reserved by PyTorch but unallocated. "
            "If reserved but unallocated memory is large try setting "
            "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See "
            "documentation for Memory Management  (https://docs.pytorch.org/docs/stable/notes/"
            "cuda.html#optimizing-memory-usage-with-pytorch-cuda-alloc-conf)",
            requested_bytes=alloc_size,
        )
