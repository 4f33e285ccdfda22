"""torch.compile where there is no GPU: the bookkeeping of CUDA graphs, on the CPU.

    >>> from labsupport.compiler import GraphRecorder
    >>> GraphRecorder().reserved_bytes()
    0

Modules: `graphs` (`GraphRecorder`, a `torch.compile` backend that records each compiled graph
once per distinct set of input sizes, with the memory its private pool reserves, and replays
it: the stand-in for `mode="reduce-overhead"`), `pool` (what one graph's run asks of a private
pool, by the CUDA caching allocator's rules). Dynamo itself runs for real: guards, recompiles,
`recompile_limit`, `torch.compiler.set_stance`, `TORCH_LOGS`. Nothing lab-specific.
"""

from labsupport.compiler.graphs import GraphRecorder, Recording

__all__ = ["GraphRecorder", "Recording"]
