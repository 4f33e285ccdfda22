import pytest

from labsupport.serving.kv_cache import BlockAllocator, OutOfBlocks, PagedKVCache
from labsupport.serving.model import ModelConfig


def test_allocation_rounds_up_to_blocks_and_grows_at_boundaries():
    alloc = BlockAllocator(num_blocks=8, block_size=4)
    assert alloc.allocate("a", 5) == [0, 1]  # 5 tokens -> 2 blocks
    assert alloc.allocate("a", 8) == [0, 1]  # still fits in 2 blocks
    assert alloc.allocate("a", 9) == [0, 1, 2]  # token 9 crosses into a third block
    assert (alloc.num_used, alloc.num_free, alloc.usage) == (3, 5, 3 / 8)
    assert alloc.extra_blocks_for("a", 13) == 1 and alloc.extra_blocks_for("b", 1) == 1
    alloc.check_invariants()


def test_slots_follow_the_block_table():
    alloc = BlockAllocator(num_blocks=8, block_size=4)
    alloc.allocate("x", 4)
    alloc.allocate("a", 6)  # blocks 1 and 2
    assert alloc.block_table("a") == [1, 2]
    assert alloc.slots("a", 0, 6) == [4, 5, 6, 7, 8, 9]
    assert alloc.slot("a", 5) == 9


def test_out_of_blocks_allocates_nothing():
    alloc = BlockAllocator(num_blocks=4, block_size=4)
    alloc.allocate("a", 12)
    assert not alloc.can_allocate("b", 8)
    with pytest.raises(OutOfBlocks, match="needs 2 more block"):
        alloc.allocate("b", 8)
    assert alloc.block_table("b") == [] and alloc.num_free == 1
    with pytest.raises(OutOfBlocks):
        alloc.allocate("a", 20)  # a growth that does not fit leaves the table as it was
    assert len(alloc.block_table("a")) == 3
    alloc.check_invariants()


def test_free_returns_every_block_and_is_idempotent():
    alloc = BlockAllocator(num_blocks=6, block_size=2)
    alloc.allocate("a", 5)
    alloc.allocate("b", 2)
    assert alloc.free("a") == 3
    assert alloc.free("a") == 0
    assert alloc.owners() == ["b"] and alloc.num_used == 1
    assert (alloc.allocated_total, alloc.freed_total, alloc.peak_used) == (4, 3, 4)
    alloc.free("b")
    assert alloc.num_used == 0 and alloc.usage == 0.0
    alloc.check_invariants()


def test_freed_blocks_are_reused():
    alloc = BlockAllocator(num_blocks=2, block_size=1)
    for i in range(10):
        alloc.allocate(i, 2)
        alloc.free(i)
    alloc.check_invariants()
    assert alloc.num_free == 2


def test_invariant_check_catches_a_double_owned_block():
    alloc = BlockAllocator(num_blocks=3, block_size=1)
    alloc.allocate("a", 1)
    alloc._tables["b"] = list(alloc._tables["a"])  # corrupt on purpose
    with pytest.raises(AssertionError, match="held twice"):
        alloc.check_invariants()


def test_bad_sizes_rejected():
    with pytest.raises(ValueError):
        BlockAllocator(0, 16)


def test_paged_storage_shape_and_size():
    cfg = ModelConfig()
    kv = PagedKVCache(cfg, num_blocks=10, block_size=16)
    assert kv.k.shape == (cfg.n_layers, 160, cfg.n_heads, cfg.head_dim)
    assert kv.mem_bytes == 2 * kv.k.numel() * 4
    assert (kv.num_blocks, kv.block_size) == (10, 16)
