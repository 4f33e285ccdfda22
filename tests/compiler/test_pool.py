"""labsupport.compiler.pool: a graph's allocations by its dataflow, a private pool's bytes."""

import torch

from labsupport.compiler import pool
from labsupport.memory.simulator import MiB


def _gm(fn):
    return torch.fx.symbolic_trace(fn)


def test_views_allocate_nothing_and_values_die_after_their_last_use():
    def f(x):
        y = x * 2  # allocates
        z = y.view(-1)  # a view of y: nothing new
        w = z + 1  # allocates; y (and z) die here
        return w.sum()  # allocates; w dies

    _, events = pool.traced_run(_gm(f), [torch.ones(64, 64)])
    kinds = [(k, n) for k, _, n in events]
    assert kinds == [("alloc", 16384), ("alloc", 16384), ("free", 16384), ("alloc", 4),
                     ("free", 16384)]  # fmt: skip


def test_outputs_and_inputs_are_never_freed_by_the_graph():
    def f(x, y):
        return x + y, x * y

    _, events = pool.traced_run(_gm(f), [torch.ones(8), torch.ones(8)])
    assert [k for k, _, _ in events] == ["alloc", "alloc"]


def test_the_outputs_are_what_the_graph_computes():
    def f(x):
        return torch.relu(x - 1) * 3

    x = torch.arange(6.0)
    out, _ = pool.traced_run(_gm(f), [x])
    assert torch.equal(out, torch.relu(x - 1) * 3)


def test_a_pool_reserves_segments_by_the_caching_allocators_rules():
    assert pool.private_pool_bytes([]) == 0
    small = [("alloc", 1, 4096), ("alloc", 2, 4096)]
    assert pool.private_pool_bytes(small) == 2 * MiB  # one small segment holds both
    large = [("alloc", 1, 30 * MiB), ("free", 1, 30 * MiB), ("alloc", 2, 30 * MiB)]
    assert pool.private_pool_bytes(large) == 30 * MiB  # the freed block is reused
    medium = [("alloc", 1, 3 * MiB)]
    assert pool.private_pool_bytes(medium, static_input_bytes=[512]) == 22 * MiB
