"""The chat-backend's stream handler as released: what the server iterates for each stream.

    >>> import inspect
    >>> from labsupport.scenarios.client_gone_gpu_still_busy import release
    >>> inspect.isasyncgenfunction(release.stream_outputs)
    True

The server (`srelab serve --stream-handler`) streams every response through `stream_outputs`:
an async generator that receives the request's `handle` and yields the engine's outputs, as
vLLM's OpenAI server iterates `AsyncLLM.generate()`. The lab shows this source in its Fix
section; `rounds.RELEASE` names it for the server.
"""

from __future__ import annotations


async def stream_outputs(handle):
    """Stream the engine's outputs for one request, and nothing else."""
    async for out in handle.stream():  # BUG: nothing aborts the request when the client leaves
        yield out
