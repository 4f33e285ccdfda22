"""What flows through the engine: sampling parameters, requests, outputs, handles, heartbeat.

    >>> from labsupport.serving.requests import SamplingParams
    >>> params = SamplingParams(max_tokens=8, temperature=0.0)
    >>> params.max_tokens, params.is_plain
    (8, True)

`Request` is owned by the engine thread. `RequestHandle` lives on the asyncio side: the engine
thread pushes outputs into it with `loop.call_soon_threadsafe`, the server reads them with
`async for out in handle.stream()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field


class EngineDeadError(RuntimeError):
    """The engine loop has died; requests cannot be served (vLLM answers 503 on /health)."""


@dataclass(frozen=True)
class SamplingParams:
    """What the engine needs of a request's sampling fields (validated by the protocol layer)."""

    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    top_k: int = 0  # 0: all tokens
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias) pairs
    allowed_token_ids: tuple[int, ...] | None = None
    stop: tuple[str, ...] = ()  # stop strings (the text before them is returned)
    stop_token_ids: tuple[int, ...] = ()
    include_stop_str_in_output: bool = False
    min_tokens: int = 0  # no stop (string or token) before this many tokens
    logprobs: int | None = None  # top logprobs per output token (None: none)
    prompt_logprobs: int | None = None  # per prompt token (-1: the whole vocabulary)
    n: int = 1  # samples of the API request this one belongs to (for vllm:request_params_n)

    @property
    def is_plain(self) -> bool:
        """Nothing to do to the logits before temperature / top-p / top-k / min-p."""
        return (
            not self.logit_bias
            and self.allowed_token_ids is None
            and not (self.stop_token_ids and self.min_tokens)
            and self.repetition_penalty == 1.0
            and not self.frequency_penalty
            and not self.presence_penalty
        )


@dataclass(frozen=True)
class TokenLogprob:
    """A token's logprob under the raw model distribution, its rank, and the top tokens'."""

    token_id: int
    logprob: float
    rank: int
    top: dict  # token id -> logprob, most likely first


@dataclass(frozen=True)
class TokenOutput:
    request_id: str
    token_id: int | None  # None on the final output of an aborted or failed request
    text: str  # text that became visible with this token (stop strings held back, cut)
    finished: bool
    finish_reason: str | None  # "length", "stop", "abort", "error"
    num_prompt_tokens: int
    num_output_tokens: int
    logprob: TokenLogprob | None = None  # when the request asked for logprobs
    stop_reason: int | str | None = None  # the stop string or token id that ended it
    prompt_logprobs: tuple | None = None  # on the first output: one entry per prompt token


@dataclass(eq=False)
class Request:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    output_ids: list[int] = field(default_factory=list)
    sink: object = None
    generator: object = None
    arrival_s: float = 0.0
    scheduled_s: float | None = None
    first_token_s: float | None = None
    last_token_s: float | None = None
    finished_s: float | None = None
    steps: int = 0  # engine steps that computed a token for this request
    steps_after_client_gone: int = 0  # of which, after nobody was reading any more
    client_gone: bool = False
    num_preemptions: int = 0
    finish_reason: str | None = None
    text: str = ""  # the output text so far (cut at a stop string)
    text_sent: int = 0  # how much of it has been emitted

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.output_ids)

    @property
    def all_token_ids(self) -> list[int]:
        return self.prompt_ids + self.output_ids

    def emit(self, out: TokenOutput) -> None:
        if self.sink is not None:
            self.sink(out)
        if out.finished:
            self.sink = None  # finished requests stay in history; their queues need not


@dataclass
class EngineCounters:
    """Cumulative engine counters (read by /metrics at scrape time)."""

    steps: int = 0
    prompt_tokens: int = 0
    recomputed_tokens: int = 0  # prefilled again after a preemption
    generation_tokens: int = 0
    wasted_steps: int = 0  # tokens computed for requests whose client had gone
    preemptions: int = 0
    aborts: int = 0
    finished: dict = field(default_factory=lambda: {"length": 0, "abort": 0, "error": 0})


@dataclass(frozen=True)
class Heartbeat:
    """Is the engine making progress? `step_count` must advance while work is pending."""

    step_count: int
    last_step_age_s: float | None
    loop_count: int
    last_loop_age_s: float | None
    num_running: int
    num_waiting: int
    alive: bool

    @property
    def pending(self) -> int:
        return self.num_running + self.num_waiting

    def as_dict(self) -> dict:
        return {**asdict(self), "pending": self.pending}


class RequestHandle:
    """The asyncio side of one request."""

    def __init__(self, engine, loop: asyncio.AbstractEventLoop):
        self.engine = engine
        self.loop = loop
        self.request_id: str = ""
        self.finished = False  # the final output was produced (by the engine or locally)
        self._queue: asyncio.Queue[TokenOutput] = asyncio.Queue()

    def push(self, out: TokenOutput) -> None:
        """Called on the engine thread."""
        if out.finished:
            self.finished = True
        try:
            self.loop.call_soon_threadsafe(self._queue.put_nowait, out)
        except RuntimeError:  # the loop is closed: nobody will read this any more
            pass

    async def stream(self) -> AsyncIterator[TokenOutput]:
        while True:
            out = await self._queue.get()
            yield out
            if out.finished:
                return

    async def collect(self) -> list[TokenOutput]:
        return [out async for out in self.stream()]

    def abort(self, *, end_stream_now: bool = False) -> None:
        """Ask the engine to abort; with `end_stream_now`, end the stream without waiting for it.

        `end_stream_now` must be called on the loop's thread (a wedged engine never answers).
        """
        self.engine.abort_request(self.request_id)
        if end_stream_now and not self.finished:
            self.finished = True
            self._queue.put_nowait(TokenOutput(self.request_id, None, "", True, "abort", 0, 0))

    def mark_client_gone(self) -> None:
        self.engine.mark_client_gone(self.request_id)
