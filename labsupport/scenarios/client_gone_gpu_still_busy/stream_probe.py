"""Drive a stream handler against a real engine in this process: does it cancel? (lab 286)

    >>> from labsupport.serving import cancel_probe, disconnects
    >>> p = cancel_probe.probe(disconnects.naive_stream_outputs, "cancel")
    >>> p.tokens, p.engine_reason, p.steps_after_left > 20
    (3, None, True)

`probe(fn, mode)` builds a small engine on the CPU, submits one request, and consumes
`fn(handle)` (the async generator the server would stream) the way a server does when its
client goes away after `leave_after_tokens` tokens:

- `cancel`: the consuming task is cancelled while the generator waits for the next token
  (Starlette's StreamingResponse on `http.disconnect`, vLLM's `with_cancellation`):
  `asyncio.CancelledError` is raised at the generator's `await`;
- `close`: the consumer stops between tokens and closes the generator (`aclose()`, or the
  garbage collector): `GeneratorExit` is raised at the generator's `yield`;
- `complete`: the consumer reads everything; nothing may be aborted.

Then it watches the engine for `watch_s`: did the request end as `abort`, how many tokens were
computed after the consumer left, are its KV blocks back?
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from labsupport import wire

MODES = ("cancel", "close", "complete")


@wire.record
@dataclass
class Probe:
    mode: str
    tokens: int  # outputs with a token that the consumer received
    engine_reason: str | None  # how the engine ended the request; None: still running
    steps_after_left: int  # tokens the engine computed after the consumer left
    kv_blocks_used: int  # in the engine's pool at the end of the watch
    cancel_propagated: bool | None  # mode cancel: the consuming task ended cancelled
    last_reason: str | None  # finish_reason of the last output the consumer saw
    error: str | None = None  # what the handler raised, "Type: message"


class NotAStream(TypeError):
    """The handler is not an async generator (e.g. `async def` without `yield`)."""


async def _open(fn, handle):
    outputs = fn(handle)
    if hasattr(outputs, "__aiter__"):
        return outputs
    if asyncio.iscoroutine(outputs):
        await outputs  # a stub that raises NotImplementedError raises it here
    raise NotAStream(
        f"{getattr(fn, '__name__', fn)}(handle) returned {type(outputs).__name__}, not an async "
        "iterator: write an async generator (async def with `yield out` inside)"
    )


async def _consume(outputs, received: list, leave_after: int, enough: asyncio.Event):
    async for out in outputs:
        received.append(out)
        if sum(o.token_id is not None for o in received) >= leave_after:
            enough.set()  # the prober cancels this task at its next wait for a token


async def _probe(engine, fn, mode: str, leave_after: int, max_tokens: int, watch_s: float):
    from labsupport.serving.requests import SamplingParams

    handle = engine.submit([5, 6, 7, 8], SamplingParams(max_tokens=max_tokens))
    received: list = []
    cancel_propagated = None
    error = None
    outputs = await _open(fn, handle)
    try:
        if mode == "complete":
            async for out in outputs:
                received.append(out)
        elif mode == "close":
            async for out in outputs:
                received.append(out)
                if sum(o.token_id is not None for o in received) >= leave_after:
                    break  # the generator now waits at its `yield`
            await outputs.aclose()
        else:
            enough = asyncio.Event()
            task = asyncio.ensure_future(_consume(outputs, received, leave_after, enough))
            waiter = asyncio.ensure_future(enough.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            task.cancel()  # the task waits inside the generator, for the next token
            try:
                await task
                cancel_propagated = False
            except asyncio.CancelledError:
                cancel_propagated = True
    except Exception as exc:  # the handler's own failure, reported, not raised
        error = f"{type(exc).__name__}: {exc}"
    deadline = time.monotonic() + watch_s
    while (req := engine.request_info(handle.request_id)) is None:  # not yet seen by the engine
        if time.monotonic() > deadline + 5.0:
            raise RuntimeError(f"the engine never picked up the request: {engine.dead!r}")
        await asyncio.sleep(0.005)
    left_at = len(req.output_ids)
    if mode != "complete":
        handle.mark_client_gone()  # as the server does once the response is over
    while req.finish_reason is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    after = len(req.output_ids) - left_at
    reason = req.finish_reason
    tokens = sum(o.token_id is not None for o in received)
    last = received[-1].finish_reason if received else None
    blocks = engine.kv.allocator.num_used
    if reason is None:
        handle.abort()  # clean up behind the handler
    return Probe(mode, tokens, reason, after, blocks, cancel_propagated, last, error)


def probe(
    stream_outputs,
    mode: str,
    *,
    leave_after_tokens: int = 3,
    max_tokens: int | None = None,
    min_step_s: float = 0.005,
    watch_s: float = 0.5,
) -> Probe:
    """Consume `stream_outputs(handle)` in `mode` (cancel | close | complete) on a CPU engine.

    max_tokens: default 24 to complete, 400 otherwise (80 watch windows of engine steps).
    Raises NotAStream when it is not an async generator, and whatever it raises when called.
    A learner's handler (an exercise ref) is probed in a contained process of its own.
    """
    from labsupport import isolate

    if isolate.carries_learner_code(stream_outputs):
        r = isolate.run_function(
            "labsupport.serving.cancel_probe:_probe_loaded",
            stream_outputs,
            mode,
            leave_after_tokens=leave_after_tokens,
            max_tokens=max_tokens,
            min_step_s=min_step_s,
            watch_s=watch_s,
            timeout_s=60,
        )
        if r.exception_type == "NotAStream":
            raise NotAStream(r.error.split(": ", 1)[-1])
        if r.exception_type == "NotImplementedError":
            raise NotImplementedError(r.error.split(": ", 1)[-1])
        if not r.ok:
            return Probe(mode, 0, None, 0, 0, None, None, error=r.error)
        return r.value
    from labsupport.serving.aio import run_sync
    from labsupport.serving.engine import Engine, EngineConfig

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    max_tokens = max_tokens or (24 if mode == "complete" else 400)
    engine = Engine.build(config=EngineConfig(num_blocks=64, min_step_s=min_step_s)).start()
    try:
        return run_sync(
            lambda: _probe(engine, stream_outputs, mode, leave_after_tokens, max_tokens, watch_s)
        )
    finally:
        engine.stop()


def _probe_loaded(ref, mode: str, **kwargs) -> Probe:
    """In the contained child: load the learner's handler, then probe it here."""
    return probe(ref.load(), mode, **kwargs)
