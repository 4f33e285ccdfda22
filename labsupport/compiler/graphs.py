"""A CPU stand-in for the CUDA graphs of `torch.compile(mode="reduce-overhead")`.

    >>> import torch
    >>> from labsupport.compiler.graphs import GraphRecorder
    >>> rec = GraphRecorder()
    >>> f = torch.compile(lambda x: torch.relu(x) * 2, backend=rec.backend, dynamic=False)
    >>> for n in (8, 8, 16, 8):
    ...     _ = f(torch.ones(4, n))
    >>> [(r.graph, r.shapes) for r in rec.recordings], rec.replays
    ([(0, ((4, 8),)), (1, ((4, 16),))], 2)
    >>> rec.reserved_bytes() // 2**20   # two private pools of one 2 MiB segment each
    4
    >>> torch._dynamo.reset()

On a GPU, `mode="reduce-overhead"` hands each graph Dynamo compiles to Inductor and records it
as a CUDA graph (CUDA graph trees): once per distinct set of input sizes - a static graph has
one, a graph with dynamic shapes records a new one for each size it meets - and later calls
with those sizes replay the recording after copying the inputs into its static input buffers.
Each recording keeps memory of the caching allocator's private pool reserved for as long as it
lives. This backend does the same bookkeeping on the CPU: Dynamo itself (real guards,
recompiles, `recompile_limit`, stances) hands it graphs; it records each (graph, input sizes)
once, with the bytes its private pool reserves (`labsupport.compiler.pool`), warns through
torch's own `maybe_warning_due_to_dynamic_shape` past
`torch._inductor.config.triton.cudagraph_dynamic_shape_warn_limit` sizes of one dynamic graph,
and replays by running the graph on copies of the inputs in its static buffers. Not modelled:
the warm-up run before a recording, pools shared between graphs of one tree (so a GPU reserves
less per recording than this), and speed: a CPU has no kernel-launch overhead for a replay to
save, so a replay costs what the eager code costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labsupport.compiler import pool

__all__ = ["GraphRecorder", "Recording"]


@dataclass(frozen=True)
class Recording:
    """One graph recorded for one set of input sizes, and the memory its pool keeps."""

    graph: int  # the compiled graph it belongs to, in the order Dynamo compiled them
    shapes: tuple  # the sizes of its non-static inputs (tensors as tuples, ints as ints)
    pool_bytes: int  # reserved by its private pool while it lives
    call: int  # the recorder's call count when it was recorded (1 is the first call)


def _is_static(value) -> bool:
    """Parameters and buffers keep their address: a graph reads them in place."""
    return isinstance(value, torch.nn.Parameter) or bool(
        getattr(value, "_dynamo_static_input_type", None)
    )


def _key(args, static: frozenset) -> tuple:
    return tuple(
        tuple(a.shape) if isinstance(a, torch.Tensor) else int(a)
        for i, a in enumerate(args)
        if i not in static
    )


class GraphRecorder:
    """A `torch.compile` backend: `torch.compile(model, backend=recorder.backend, ...)`."""

    def __init__(self) -> None:
        self.recordings: list[Recording] = []
        self.graphs = 0  # graphs Dynamo compiled and handed over
        self.calls = 0  # calls that ran a compiled graph (a recording or a replay)
        self.replays = 0

    def reserved_bytes(self) -> int:
        """Bytes every recording's private pool keeps reserved (what memory_reserved adds)."""
        return sum(r.pool_bytes for r in self.recordings)

    def backend(self, gm: torch.fx.GraphModule, example_inputs):
        graph = self.graphs
        self.graphs += 1
        static = frozenset(i for i, e in enumerate(example_inputs) if _is_static(e))
        dynamic = any(isinstance(e, torch.SymInt) for e in example_inputs)
        recorded: dict[tuple, list] = {}  # sizes -> static input buffers

        def run(*args):
            self.calls += 1
            key = _key(args, static)
            buffers = recorded.get(key)
            if buffers is None:
                if dynamic:
                    from torch._inductor.cudagraph_utils import maybe_warning_due_to_dynamic_shape

                    maybe_warning_due_to_dynamic_shape(recorded, key)
                buffers = [
                    a if (i in static or not isinstance(a, torch.Tensor)) else a.clone()
                    for i, a in enumerate(args)
                ]
                outputs, events = pool.traced_run(gm, buffers)
                copies = [
                    b.untyped_storage().nbytes()
                    for i, b in enumerate(buffers)
                    if i not in static and isinstance(b, torch.Tensor)
                ]
                pool_bytes = pool.private_pool_bytes(events, static_input_bytes=copies)
                recorded[key] = buffers
                self.recordings.append(Recording(graph, key, pool_bytes, self.calls))
                return outputs
            self.replays += 1
            for i, (buffer, a) in enumerate(zip(buffers, args, strict=True)):
                if i not in static and isinstance(a, torch.Tensor):
                    buffer.copy_(a)
            return gm.forward(*buffers)

        return run
