"""Lab 292's API front end: what happens to a completion request before the engine sees it.

    >>> import asyncio
    >>> from labsupport.bpe.tokenizer import Tokenizer
    >>> from labsupport.scenarios.cpu_pegged_gpu_idle.frontend import Frontend, Request
    >>> front = Frontend(Tokenizer({b"ab": 256}), max_model_len=8, path="prompt")
    >>> req = Request(0, "chat", 0.0, prompt="ab ab", stop=(), max_tokens=4)
    >>> asyncio.run(front.handle_completion(req)), req.prompt_ids
    (True, [256, 32, 256])

`handle_completion(request)` is the server's request handler, a coroutine on the event loop, as
an OpenAI-compatible server runs it: count the prompt's tokens against the key's budget (where
the deployment has one), tokenize the prompt, tokenize the stop sequences, check the length
against `max_model_len`, then hand the request to the engine. Every tokenization awaits
`server.tokenize(text)` (the `ServerHandle`), which a deployment may replace at start-up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


class PromptRejected(Exception):
    """A request the server answers with 400 (what `server.reject(message)` raises)."""


@dataclass
class Request:
    request_id: int
    role: str
    arrival_s: float
    prompt: str
    stop: tuple
    max_tokens: int
    prompt_ids: list | None = None
    stop_ids: list = field(default_factory=list)
    admitted_s: float = float("nan")
    first_token_s: float = float("nan")
    finish_s: float = float("nan")
    n_tokens: int = 0
    last_token_s: float = 0.0
    max_itl_s: float = 0.0
    status: int = 0
    done: asyncio.Event | None = None


class ServerHandle:
    """What a deployment's start-up code may configure (lab 292's `configure_frontend(server)`).

    tokenizer: the model's tokenizer (`.encode(text)`, `.longest_token_chars`; it pickles as
    its vocabulary). max_model_len: the most tokens a prompt may have. tokenize: the coroutine
    function the server awaits for every text it tokenizes. reject(message): raise it to
    answer 400. on_shutdown(fn): call fn() when the server stops.
    """

    def __init__(self, tokenizer, max_model_len: int, tokenize):
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.tokenize = tokenize
        self._shutdown: list = []

    def reject(self, message: str):
        raise PromptRejected(message)

    def on_shutdown(self, fn) -> None:
        self._shutdown.append(fn)

    def shutdown(self) -> list[str]:
        """Run the shutdown callbacks; what they raised, as text."""
        errors = []
        for fn in self._shutdown:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a deployment's bug, reported
                errors.append(f"{type(exc).__name__}: {exc}")
        return errors


class Frontend:
    """The request path. path: which deployment this is ("prompt": no budget; "usage": the
    key's token budget counts prompt tokens first; "stop": clients send stop sequences)."""

    def __init__(self, tokenizer, *, max_model_len: int, path: str):
        self.tokenizer = tokenizer
        self.path = path
        self.server = ServerHandle(tokenizer, max_model_len, self.tokenize)
        self.budget_tokens: dict[str, int] = {}

    async def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    async def handle_completion(self, request: Request) -> bool:
        """True when the request was admitted; False when answered with 400."""
        request_id = request.request_id  # noqa: F841 - what a stack dump with locals shows
        try:
            if self.path == "usage":
                await self.count_usage_tokens(request)
            await self.admit_prompt(request)
            await self.encode_stop_sequences(request)
        except PromptRejected:
            request.status = 400
            return False
        return True

    async def count_usage_tokens(self, request: Request) -> None:
        """The key's tokens-per-minute budget counts the prompt before admission."""
        request.prompt_ids = await self.server.tokenize(request.prompt)
        key = f"key-{request.request_id % 7}"
        self.budget_tokens[key] = self.budget_tokens.get(key, 0) + len(request.prompt_ids)

    async def admit_prompt(self, request: Request) -> None:
        if request.prompt_ids is None:
            request.prompt_ids = await self.server.tokenize(request.prompt)
        limit = self.server.max_model_len
        if len(request.prompt_ids) + request.max_tokens > limit:
            self.server.reject(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{len(request.prompt_ids) + request.max_tokens} tokens"
            )

    async def encode_stop_sequences(self, request: Request) -> None:
        """Stop sequences are matched on token ids, so each is tokenized once."""
        for text in request.stop:
            ids = await self.server.tokenize(text)
            if len(ids) > self.server.max_model_len:
                self.server.reject("a stop sequence is longer than the model's context")
            request.stop_ids.append(ids)
