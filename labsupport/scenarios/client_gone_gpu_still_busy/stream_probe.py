"""Drive a stream handler against a real engine, the ways a server stops reading it (lab 286).

    >>> from labsupport.scenarios.client_gone_gpu_still_busy import release, stream_probe
    >>> p = stream_probe.probe(release.stream_outputs, "cancel")
    >>> p.tokens, p.engine_reason, p.tokens_after_left > 20
    (3, None, True)

`probe(fn, mode)` builds a small engine on the CPU, submits one request and consumes
`fn(handle)` (the async generator the server would stream) the way a server does:

- `cancel`: the consuming task is cancelled while the generator waits for the next token
  (Starlette's StreamingResponse on `http.disconnect`, vLLM's `with_cancellation`):
  `asyncio.CancelledError` is raised at the generator's `await`;
- `close`: the consumer stops between tokens and closes the generator (`aclose()`, or the
  garbage collector): `GeneratorExit` is raised at the generator's `yield`;
- `complete`: the consumer reads everything, pausing twice as a slow client does; nothing may
  be aborted.

In `cancel` and `close` the consumer leaves after `leave_after_tokens` tokens; the probe counts
the tokens the engine computes from that moment for `watch_s`, how the request ended and the
KV blocks it still holds. `probe_all(fn)` runs every mode at once on one engine (one request
each). A learner's handler (an exercise reference) is probed in a contained process and the
measurements come back as data.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from labsupport import progress, wire

MODES = ("cancel", "close", "complete")
LEAVE_AFTER_TOKENS = 3
LEAVING_MAX_TOKENS = 400  # far more than a watch window of steps
COMPLETE_MAX_TOKENS = 160  # more than `cancel` and `close` watch: an abort after N tokens shows
PAUSES_AFTER = (5, 40)  # the reader of `complete` pauses after these tokens
PAUSE_S = 0.12


@wire.record
@dataclass
class Probe:
    mode: str
    tokens: int  # outputs with a token that the consumer received
    engine_reason: str | None  # how the engine ended the request; None: still running
    tokens_after_left: int  # tokens the engine computed after the consumer left (watch window)
    kv_blocks_used: int  # held by this request at the end of the watch
    cancel_propagated: bool | None  # mode cancel: the consuming task ended cancelled
    last_reason: str | None  # finish_reason of the last output the consumer saw
    max_tokens: int = 0
    handler_returned_s: float | None = None  # after the consumer left, when the handler let go
    error: str | None = None  # what the handler raised, "Type: message"


class NotAStream(TypeError):
    """The handler is not an async generator (e.g. `async def` without `yield`)."""


async def _open(fn, handle):
    outputs = fn(handle)
    if hasattr(outputs, "__aiter__") and hasattr(outputs, "__anext__"):
        return outputs
    if asyncio.iscoroutine(outputs):
        await outputs  # a stub that raises NotImplementedError raises it here
    raise NotAStream(
        f"{getattr(fn, '__name__', fn)}(handle) returned {type(outputs).__name__}, not an async "
        "generator: write an async generator (async def with `yield out` inside)"
    )


def precheck(fn) -> None:
    """Fail before any engine starts: a stub raises here, a coroutine is not a stream."""
    outputs = fn(None)  # an async generator runs nothing until iterated
    if hasattr(outputs, "__aiter__") and hasattr(outputs, "__anext__"):
        return
    if asyncio.iscoroutine(outputs):
        try:
            outputs.send(None)  # runs the body up to its first await: a stub raises here
        except NotImplementedError:
            raise
        except BaseException:  # noqa: BLE001 - whatever it does, it is not a stream
            pass
        finally:
            outputs.close()
    raise NotAStream(
        f"{getattr(fn, '__name__', fn)}(handle) returned {type(outputs).__name__}, not an async "
        "generator: write an async generator (async def with `yield out` inside)"
    )


def _tokens(received: list) -> int:
    return sum(o.token_id is not None for o in received)


async def _consume(outputs, received: list, leave_after: int, enough: asyncio.Event):
    async for out in outputs:
        received.append(out)
        if _tokens(received) >= leave_after:
            enough.set()  # the prober cancels this task at its next wait for a token


async def _request(engine, handle, deadline: float):
    while (req := engine.request_info(handle.request_id)) is None:  # not yet seen by the engine
        if time.monotonic() > deadline:
            raise RuntimeError(f"the engine never picked up the request: {engine.dead!r}")
        await asyncio.sleep(0.002)
    return req


def _blocks(engine, handle) -> int:
    return len(engine.kv.allocator.block_table(handle.request_id))


async def _settle(engine, handle, req) -> None:
    """Clean up behind the handler: abort what it left running, wait for its blocks."""
    if req.finish_reason is None:
        handle.abort()
    deadline = time.monotonic() + 5.0
    while req.finish_reason is None and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    while _blocks(engine, handle) and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


async def _probe(engine, fn, mode: str, leave_after: int, max_tokens: int, watch_s: float):
    from labsupport.serving.requests import SamplingParams

    handle = engine.submit([5, 6, 7, 8], SamplingParams(max_tokens=max_tokens))
    received: list = []
    cancel_propagated = None
    error = None
    left_at = left_t = returned_s = None
    req = None
    outputs = await _open(fn, handle)
    limit_s = watch_s + 1.0  # how long the handler may take to let go, once left
    try:
        if mode == "complete":
            async for out in outputs:
                received.append(out)
                if out.token_id is not None and _tokens(received) in PAUSES_AFTER:
                    await asyncio.sleep(PAUSE_S)
        elif mode == "close":
            async for out in outputs:
                received.append(out)
                if _tokens(received) >= leave_after:
                    break  # the generator now waits at its `yield`
            req = await _request(engine, handle, time.monotonic() + 5.0)
            left_at, left_t = len(req.output_ids), time.monotonic()
            try:
                await asyncio.wait_for(outputs.aclose(), limit_s)
                returned_s = time.monotonic() - left_t
            except asyncio.TimeoutError:
                error = f"TimeoutError: still closing {limit_s:.1f} s after the consumer left"
        else:
            enough = asyncio.Event()
            task = asyncio.ensure_future(_consume(outputs, received, leave_after, enough))
            waiter = asyncio.ensure_future(enough.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if task.done():  # the stream ended before the consumer wanted to leave
                task.result()
            else:
                req = await _request(engine, handle, time.monotonic() + 5.0)
                left_at, left_t = len(req.output_ids), time.monotonic()
                task.cancel()  # the task waits inside the generator, for the next token
                done, _ = await asyncio.wait({task}, timeout=limit_s)
                if done:
                    returned_s = time.monotonic() - left_t
                    cancel_propagated = task.cancelled()
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()
                else:
                    error = f"TimeoutError: still running {limit_s:.1f} s after it was cancelled"
                    task.cancel()
                    await asyncio.wait({task}, timeout=0.5)
    except Exception as exc:  # the handler's own failure, reported, not raised
        error = f"{type(exc).__name__}: {exc}"
    if req is None:
        req = await _request(engine, handle, time.monotonic() + 5.0)
    if left_at is None:
        left_at, left_t = len(req.output_ids), time.monotonic()
    if mode != "complete":
        handle.mark_client_gone()  # as the server does once the response is over
    deadline = left_t + watch_s
    while time.monotonic() < deadline and (mode != "complete" or req.finish_reason is None):
        await asyncio.sleep(0.005)
    if mode == "complete":
        while req.finish_reason is None and time.monotonic() < deadline + 5.0:
            await asyncio.sleep(0.005)
    after = max(0, len(req.output_ids) - left_at) if mode != "complete" else 0
    reason = req.finish_reason
    blocks = _blocks(engine, handle)
    last = received[-1].finish_reason if received else None
    await _settle(engine, handle, req)
    return Probe(
        mode, _tokens(received), reason, after, blocks, cancel_propagated, last, max_tokens,
        None if returned_s is None else round(returned_s, 4), error,
    )  # fmt: skip


def _max_tokens(mode: str) -> int:
    return COMPLETE_MAX_TOKENS if mode == "complete" else LEAVING_MAX_TOKENS


async def _probe_modes(engine, fn, modes, leave_after: int, watch_s: float) -> dict:
    """The modes at once, one request each, batched by the engine as a server's would be."""
    probes = await asyncio.gather(
        *(_probe(engine, fn, mode, leave_after, _max_tokens(mode), watch_s) for mode in modes)
    )
    return dict(zip(modes, probes, strict=True))


def probe_all(
    stream_outputs,
    modes: tuple[str, ...] = MODES,
    *,
    leave_after_tokens: int = LEAVE_AFTER_TOKENS,
    min_step_s: float = 0.005,
    watch_s: float = 0.5,
    show_progress: bool = True,
) -> dict[str, Probe]:
    """Every mode at once on one CPU engine, one request each: {mode: Probe}.

    Raises NotAStream when `stream_outputs` is not an async generator function, and whatever
    it raises when called. A learner's handler is probed in a contained process of its own.
    """
    from labsupport import isolate

    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isolate.carries_learner_code(stream_outputs):
        r = isolate.run_function(
            "labsupport.scenarios.client_gone_gpu_still_busy.stream_probe:_probe_loaded",
            stream_outputs,
            tuple(modes),
            leave_after_tokens=leave_after_tokens,
            min_step_s=min_step_s,
            watch_s=watch_s,
            timeout_s=30 + 8 * len(modes),
        )
        if r.exception_type == "NotAStream":
            raise NotAStream(r.error.split(": ", 1)[-1])
        if r.exception_type == "NotImplementedError":
            raise NotImplementedError(r.error.split(": ", 1)[-1])
        if not r.ok:
            err = r.error or "the probe failed"
            return {
                m: Probe(m, 0, None, 0, 0, None, None, _max_tokens(m), None, err) for m in modes
            }
        return r.value
    precheck(stream_outputs)  # before torch is even imported
    from labsupport.serving.aio import run_sync
    from labsupport.serving.engine import Engine, EngineConfig

    name = getattr(stream_outputs, "__name__", "handler")
    expected_s = 1.0 + max(1.2 if m == "complete" else watch_s + 0.2 for m in modes)
    with progress.timed(expected_s, f"probing {name}", disable=None if show_progress else True):
        engine = Engine.build(config=EngineConfig(num_blocks=64, min_step_s=min_step_s)).start()
        try:
            return run_sync(
                lambda: _probe_modes(engine, stream_outputs, modes, leave_after_tokens, watch_s)
            )
        finally:
            engine.stop()


def probe(stream_outputs, mode: str, **kwargs) -> Probe:
    """One mode (cancel | close | complete): see `probe_all`."""
    return probe_all(stream_outputs, (mode,), **kwargs)[mode]


def _probe_loaded(ref, modes, **kwargs) -> dict:
    """In the contained child: load the learner's handler, then probe it here."""
    return probe_all(ref.load(), modes, show_progress=False, **kwargs)
