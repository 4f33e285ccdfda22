"""What one graph's run asks of a CUDA graph's private memory pool, on the CPU.

    >>> import torch
    >>> from labsupport.compiler import pool
    >>> gm = torch.fx.symbolic_trace(lambda x: torch.relu(x @ x.T).sum(0))
    >>> outputs, events = pool.traced_run(gm, [torch.ones(512, 256)])
    >>> [(kind, nbytes) for kind, _, nbytes in events]
    [('alloc', 1048576), ('alloc', 1048576), ('free', 1048576), ('alloc', 2048), ('free', 1048576)]
    >>> pool.private_pool_bytes(events, static_input_bytes=[512 * 256 * 4]) // 2**20  # MiB
    4

A CUDA graph is captured once for one set of input shapes, and every tensor the captured work
allocates comes from a private pool of the caching allocator that stays reserved for as long as
the graph lives: the copies of the inputs the graph reads (its static inputs), the outputs, and
the intermediates (freed inside the pool, where later allocations of the same capture reuse
them). `traced_run` runs an FX graph node by node (`torch.fx.Interpreter`) and lists the
allocations and frees of tensor storages as the graph's dataflow makes them (a view allocates
nothing; a value is freed after its last use; outputs stay). `private_pool_bytes` replays those
events in a fresh caching allocator (`labsupport.memory.simulator`, the CUDA allocator's
rules: 2 MiB small segments, 20 MiB or rounded large ones) and returns what the pool reserves.
"""

from __future__ import annotations

import torch
import torch.fx

from labsupport.memory.simulator import CachingAllocatorSim

__all__ = ["traced_run", "private_pool_bytes"]


def _storages(value) -> list[tuple[int, int]]:
    """(storage address, bytes) of every tensor in value (nested lists and tuples)."""
    out = []
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        if storage.nbytes():
            out.append((storage.data_ptr(), storage.nbytes()))
    elif isinstance(value, (list, tuple)):
        for item in value:
            out.extend(_storages(item))
    return out


class _Tracker(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule):
        super().__init__(gm, garbage_collect_values=True)
        self.events: list[tuple[str, int, int]] = []
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.owned: set[int] = set()  # storages the graph allocated (inputs are not its own)
        self.keys: dict[torch.fx.Node, list[int]] = {}

    def run_node(self, n: torch.fx.Node):
        out = super().run_node(n)
        keys = []
        for ptr, nbytes in _storages(out):
            if ptr not in self.refs and n.op != "placeholder":
                self.events.append(("alloc", ptr, nbytes))
                self.owned.add(ptr)
                self.sizes[ptr] = nbytes
            self.refs[ptr] = self.refs.get(ptr, 0) + 1
            keys.append(ptr)
        self.keys[n] = keys
        if n.op != "output":
            for done in self.user_to_last_uses.get(n, []):
                self._release(done)
        return out

    def _release(self, node: torch.fx.Node) -> None:
        for ptr in self.keys.pop(node, []):
            self.refs[ptr] -= 1
            if self.refs[ptr] == 0:
                del self.refs[ptr]
                if ptr in self.owned:
                    self.owned.discard(ptr)
                    self.events.append(("free", ptr, self.sizes[ptr]))


def traced_run(gm: torch.fx.GraphModule, args) -> tuple[object, list[tuple[str, int, int]]]:
    """Run `gm` on `args`; its outputs and the ("alloc" | "free", address, bytes) events."""
    tracker = _Tracker(gm)
    outputs = tracker.run(*args)
    return outputs, tracker.events


def private_pool_bytes(events, *, static_input_bytes=()) -> int:
    """Bytes a private pool reserves for a capture: static input copies first, then `events`
    (what stays allocated at the end is the graph's outputs)."""
    sim = CachingAllocatorSim()
    for nbytes in static_input_bytes:
        if nbytes:
            sim.malloc(nbytes)
    addresses: dict[int, int] = {}
    for kind, ptr, nbytes in events:
        if kind == "alloc":
            addresses[ptr] = sim.malloc(nbytes)
        elif ptr in addresses:
            sim.free(addresses.pop(ptr))
    return sim.memory_reserved()
