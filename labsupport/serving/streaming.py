"""Server-sent events for a Job, as vLLM streams them: a chunk per token, usage, then [DONE].

    >>> from labsupport.serving.streaming import sse
    >>> sse({"a": "é"})
    'data: {"a":"é"}\\n\\n'

Completions (`completion/serving.py`, `completion_stream_generator`): each engine output is a
chunk with one choice, its index `prompt * n + sample`; `echo` puts the prompt before the first
token, `return_token_ids` adds the prompt's ids to the first chunk and each chunk's token ids.
Chat: a first chunk per choice with `delta.role`, then `delta.content` per token. The last
token's chunk carries `finish_reason` and `stop_reason`. `stream_options.include_usage` adds a
last chunk with no choices and the usage; `continuous_usage_stats` puts the usage so far on
every chunk. A request the server aborts (503) or fails (500) ends with an error chunk, then
`data: [DONE]`, as vLLM's generators do - a client reading to [DONE] still sees the error.

A stream of one choice iterates the engine outputs itself, so a stream handler (lab 286) sees a
leaving client as vLLM's generator would: `CancelledError` at its `await`, or `GeneratorExit`
at its `yield`. Several choices are read by one task each and merged as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from labsupport.serving import responses as r
from labsupport.serving.errors import ApiError
from labsupport.serving.generation import FAILED, Choice, usage_of
from labsupport.serving.protocol import SSE_DONE, Job

log = logging.getLogger("srelab.server")


def sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'), ensure_ascii=False)}\n\n"


def outputs(state, choice: Choice):
    """The choice's engine outputs, through the stream handler when the server has one."""
    if state.stream_handler is None:
        return choice.handle.stream()
    outs = state.stream_handler(choice.handle)
    if not hasattr(outs, "__aiter__"):
        if hasattr(outs, "close"):
            outs.close()  # e.g. a coroutine: `async def` without `yield`
        raise TypeError(
            f"the stream handler returned {type(outs).__name__}, not an async "
            "iterator: write it as an async generator (async def ... yield)"
        )
    return outs


async def _merged(state, choices: list[Choice]):
    """(choice, output) pairs of several choices, in the order they arrive."""
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(c: Choice) -> None:
        try:
            async for out in outputs(state, c):
                await queue.put((c, out))
        except Exception as exc:  # handed to the reader, which ends the stream
            await queue.put((c, exc))
        await queue.put((c, None))

    tasks = [asyncio.ensure_future(pump(c)) for c in choices]
    try:
        left = len(choices)
        while left:
            c, out = await queue.get()
            if out is None:
                left -= 1
            elif isinstance(out, Exception):
                raise out
            else:
                yield c, out
    finally:
        for t in tasks:
            t.cancel()


async def _single(state, choice: Choice):
    outs = None
    try:
        outs = outputs(state, choice)
        async for out in outs:
            yield choice, out
    finally:
        if state.stream_handler is not None and hasattr(outs, "aclose"):
            await outs.aclose()


def _completion_chunk(state, job: Job, c: Choice, out, first: bool, prev_len: int) -> dict:
    text = out.text
    ids = [out.token_id]
    steps = [out.logprob]
    prompt_ids = None
    if first and job.echo:
        text = ("" if job.return_token_ids else c.prompt.text) + text
        ids = c.prompt.ids + ids
        steps = list(c.prompt_lps or [None] * len(c.prompt.ids)) + steps
    if first and job.return_token_ids:
        prompt_ids = c.prompt.ids
    logprobs = None
    if job.logprobs is not None:
        logprobs = r.completion_logprobs(ids, steps, job.logprobs, state.tokenizer,
                                         offset=prev_len, as_ids=job.tokens_as_ids)  # fmt: skip
    return r.completion_chunk(
        job.request_id, state.model_name, c.index, text, logprobs=logprobs,
        finish_reason=c.finish_reason, stop_reason=c.stop_reason, prompt_token_ids=prompt_ids,
        token_ids=[out.token_id] if job.return_token_ids else None,
        usage=_so_far(state, job, c),
    )  # fmt: skip


def _chat_chunk(state, job: Job, c: Choice, out) -> dict:
    logprobs = None
    if job.logprobs is not None:
        logprobs = r.chat_logprobs([out.token_id], [out.logprob], job.logprobs, state.tokenizer,
                                   as_ids=job.tokens_as_ids)  # fmt: skip
    return r.chat_chunk(
        job.request_id, state.model_name, c.index, {"content": out.text}, logprobs=logprobs,
        finish_reason=c.finish_reason, stop_reason=c.stop_reason,
        token_ids=[out.token_id] if job.return_token_ids else None,
        usage=_so_far(state, job, c),
    )  # fmt: skip


def _so_far(state, job: Job, c: Choice) -> dict | None:
    if not job.continuous_usage:
        return None
    return r.usage(len(c.prompt.ids), len(c.token_ids), state.prompt_tokens_details)


def _openings(state, job: Job, choices: list[Choice]):
    """Chat's first chunks: the role of each choice, then the echoed message if asked."""
    for c in choices:
        yield r.chat_chunk(
            job.request_id,
            state.model_name,
            c.index,
            {"role": "assistant", "content": ""},
            usage=_so_far(state, job, c),
        )
        if job.echo_text:
            yield r.chat_chunk(
                job.request_id,
                state.model_name,
                c.index,
                {"content": job.echo_text},
                usage=_so_far(state, job, c),
            )
    # fmt: skip


async def events(state, job: Job, choices: list[Choice], done: list):
    """The SSE body of `job`; appends to `done` once the client has the last event."""
    chat = job.kind == "chat"
    source = _single(state, choices[0]) if len(choices) == 1 else _merged(state, choices)
    seen: set[int] = set()
    prev_len = {c.index: 0 for c in choices}
    try:
        if chat:
            for chunk in _openings(state, job, choices):
                yield sse(chunk)
        async with contextlib.aclosing(source) as pairs:
            async for c, out in pairs:
                c.add(out)
                if out.token_id is None:
                    if out.finished and out.finish_reason in FAILED:
                        status = 503 if out.finish_reason == "abort" else 500
                        raise ApiError(status, f"Request {out.finish_reason}ed by the server.")
                    continue
                if chat:
                    yield sse(_chat_chunk(state, job, c, out))
                else:
                    first = c.index not in seen
                    yield sse(_completion_chunk(state, job, c, out, first, prev_len[c.index]))
                    prev_len[c.index] += len(out.text)
                seen.add(c.index)
        if job.include_usage:
            yield sse(r.usage_chunk(job.request_id, state.model_name, usage_of(state, choices),
                                    chat=chat))  # fmt: skip
    except ApiError as exc:
        yield sse(exc.body())
    except Exception:
        if state.stream_handler is None:
            raise
        log.exception("stream handler failed")
        for c in choices:
            c.handle.abort()
        yield sse(ApiError(500, "The stream handler failed.").body())
    yield SSE_DONE
    done.append(True)
