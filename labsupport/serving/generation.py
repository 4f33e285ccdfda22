"""Running a Job on the engine: one engine request per (prompt, sample), collected into a body.

    >>> import asyncio
    >>> from labsupport.serving.engine import Engine
    >>> from labsupport.serving.faults import FaultController
    >>> from labsupport.serving.generation import collect, submit
    >>> from labsupport.serving.model import Tokenizer
    >>> from labsupport.serving.protocol import parse_completion
    >>> from labsupport.serving.state import ServerState
    >>> state = ServerState(Engine.build(device="cpu").start(), faults=FaultController())
    >>> body = b'{"prompt": ["a", "b"], "max_tokens": 3, "n": 2, "seed": 1}'
    >>> async def main():
    ...     choices = submit(state, parse_completion(body, Tokenizer(), "srelab-tiny", 1024))
    ...     await asyncio.gather(*(collect(c) for c in choices))
    ...     return [(c.index, len(c.token_ids), c.finish_reason) for c in choices]
    >>> asyncio.run(main())
    [(0, 3, 'length'), (1, 3, 'length'), (2, 3, 'length'), (3, 3, 'length')]
    >>> state.engine.stop()

`Choice` accumulates what the engine said about one sample: tokens, visible text, logprobs,
the prompt's logprobs (with the first output), how it ended. `completion_response` and
`chat_response` build vLLM's non-streamed bodies from the choices (streams: `streaming`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labsupport.serving import responses as r
from labsupport.serving.errors import ApiError
from labsupport.serving.protocol import Job, Prompt
from labsupport.serving.requests import RequestHandle, TokenOutput

FAILED = ("abort", "error")


@dataclass(eq=False)
class Choice:
    index: int
    prompt_index: int
    prompt: Prompt
    handle: RequestHandle
    token_ids: list[int] = field(default_factory=list)
    steps: list = field(default_factory=list)  # TokenLogprob per output token, when asked
    text: str = ""
    prompt_lps: tuple | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None

    def add(self, out: TokenOutput) -> None:
        if out.prompt_logprobs is not None:
            self.prompt_lps = out.prompt_logprobs
        if out.token_id is not None:
            self.token_ids.append(out.token_id)
            if out.logprob is not None:
                self.steps.append(out.logprob)
            self.text += out.text
        if out.finished:
            self.finish_reason, self.stop_reason = out.finish_reason, out.stop_reason

    @property
    def failed(self) -> bool:
        return self.finish_reason in FAILED


def submit(state, job: Job) -> list[Choice]:
    """Add every (prompt, sample) of `job` to the engine; on a failure, abort those added."""
    choices: list[Choice] = []
    try:
        for i, prompt in enumerate(job.prompts):
            for j in range(job.n):
                index = i * job.n + j
                rid = f"{job.request_id}-{index}"
                handle = state.engine.submit(prompt.ids, job.child_params(j), rid)
                choices.append(Choice(index, i, prompt, handle))
    except BaseException:
        for c in choices:
            c.handle.abort()
        raise
    return choices


async def collect(choice: Choice) -> Choice:
    async for out in choice.handle.stream():
        choice.add(out)
    return choice


def failure(choices: list[Choice]) -> ApiError | None:
    """The error an aborted (503) or failed (500) choice turns the response into."""
    for c in choices:
        if c.failed:
            status = 503 if c.finish_reason == "abort" else 500
            return ApiError(status, f"Request {c.finish_reason}ed by the server.")
    return None


def usage_of(state, choices: list[Choice]) -> dict:
    prompts = {c.prompt_index: len(c.prompt.ids) for c in choices}
    n_out = sum(len(c.token_ids) for c in choices)
    return r.usage(sum(prompts.values()), n_out, state.prompt_tokens_details)


def completion_response(state, job: Job, choices: list[Choice]) -> dict:
    tok = state.tokenizer
    out = []
    for c in choices:
        text, ids, steps = c.text, c.token_ids, c.steps
        if job.echo:
            prompt_text = "" if job.return_token_ids else c.prompt.text
            text, ids = prompt_text + text, c.prompt.ids + ids
            steps = list(c.prompt_lps or [None] * len(c.prompt.ids)) + steps
        logprobs = None
        if job.logprobs is not None:
            logprobs = r.completion_logprobs(ids, steps, job.logprobs, tok,
                                             as_ids=job.tokens_as_ids)  # fmt: skip
        out.append(r.completion_choice(
            c.index, text, logprobs=logprobs, finish_reason=c.finish_reason,
            stop_reason=c.stop_reason,
            token_ids=c.token_ids if job.return_token_ids else None,
            prompt_logprobs=r.prompt_logprobs(c.prompt_lps, tok),
            prompt_token_ids=c.prompt.ids if job.return_token_ids else None,
        ))  # fmt: skip
    return r.completion_body(job.request_id, state.model_name, out, usage_of(state, choices))


def chat_response(state, job: Job, choices: list[Choice]) -> dict:
    tok = state.tokenizer
    out = []
    for c in choices:
        logprobs = None
        if job.logprobs is not None:
            logprobs = r.chat_logprobs(c.token_ids, c.steps, job.logprobs, tok,
                                       as_ids=job.tokens_as_ids)  # fmt: skip
        out.append(r.chat_choice(
            c.index, job.echo_text + c.text, logprobs=logprobs, finish_reason=c.finish_reason,
            stop_reason=c.stop_reason, token_ids=c.token_ids if job.return_token_ids else None,
        ))  # fmt: skip
    first = choices[0]
    return r.chat_body(
        job.request_id,
        state.model_name,
        out,
        usage_of(state, choices),
        prompt_logprobs=r.prompt_logprobs(first.prompt_lps, tok),
        prompt_token_ids=first.prompt.ids if job.return_token_ids else None,
    )
