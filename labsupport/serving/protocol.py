"""POST /v1/completions as vLLM accepts it, turned into engine work: a `Job`.

    >>> from labsupport.serving.model import Tokenizer
    >>> from labsupport.serving.protocol import ApiError, parse_completion
    >>> body = b'{"prompt": ["Hi", "Yo"], "max_tokens": 4, "n": 2, "temperature": 1}'
    >>> job = parse_completion(body, Tokenizer(), "m", 1024)
    >>> [p.ids for p in job.prompts], job.n, job.params.max_tokens
    ([[72, 105], [89, 111]], 2, 4)
    >>> try:
    ...     parse_completion(b'{"prompt": [999999]}', Tokenizer(), "m", 1024)
    ... except ApiError as e:
    ...     print(e.status, e.message)
    400 Token id 999999 is out of vocabulary

A prompt is a string, a list of strings, a list of token ids or a list of such lists; each
prompt is one engine request per choice (`n`), and choice `i * n + j` is prompt i's j-th
sample, as in vLLM's `completion/serving.py`. Children of a seeded request get seeds
`seed + j` (vLLM's parallel sampling). Bad requests get vLLM's 4xx and message
(`sampling_fields`), in the OpenAI error shape (`errors`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from labsupport.serving.bodies import MAX_BODY_BYTES, parse_json
from labsupport.serving.errors import ApiError
from labsupport.serving.model import Tokenizer
from labsupport.serving.requests import SamplingParams
from labsupport.serving.sampling_fields import SamplingFields, sampling_params, stream_flags

__all__ = ["MAX_BODY_BYTES", "SSE_DONE", "ApiError", "Job", "Prompt", "parse_completion"]

SSE_DONE = "data: [DONE]\n\n"
EMPTY_PROMPT = "Either prompt or prompt_embeds must be provided and non-empty."


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    text: str  # what the prompt reads as (decoded when it came as token ids)


@dataclass(frozen=True)
class Job:
    """One API request: its prompts, how many samples each, and how to answer."""

    kind: str  # "completion" or "chat"
    request_id: str
    prompts: list[Prompt]
    params: SamplingParams
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    continuous_usage: bool = False
    echo: bool = False
    logprobs: int | None = None  # top logprobs to report per output token
    return_token_ids: bool = False
    tokens_as_ids: bool = False  # logprob tokens written as "token_id:N"
    echo_text: str = ""  # chat: the last message's content, put before the answer

    def child_params(self, j: int) -> SamplingParams:
        """Sample j's params: vLLM gives seeded children `seed + j`."""
        seed = self.params.seed
        return self.params if seed is None or j == 0 else replace(self.params, seed=seed + j)


class CompletionRequest(SamplingFields):
    """The fields of POST /v1/completions (vLLM's `CompletionRequest`)."""

    prompt: Any = None
    echo: bool | None = False
    logprobs: int | None = None
    max_tokens: int | None = 16
    suffix: str | None = None
    prompt_embeds: Any = None
    add_special_tokens: bool = True


def pydantic_error(exc: ValidationError) -> ApiError:
    errors = exc.errors()
    missing = [".".join(map(str, e["loc"])) for e in errors if e["type"] == "missing"]
    if missing:
        return ApiError(400, f"Field required: {', '.join(missing)}.", missing[0])
    extra = [".".join(map(str, e["loc"])) for e in errors if e["type"] == "extra_forbidden"]
    if extra:
        return ApiError(
            400, f"Unknown field(s): {', '.join(extra)}. See the vLLM API reference.", extra[0]
        )
    e = errors[0]
    param = ".".join(str(p) for p in e["loc"])
    shown = repr(e.get("input"))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return ApiError(400, f"{param}: {e['msg']} (got {shown})", param)


def validate(model, data) -> Any:
    if not isinstance(data, dict):
        raise ApiError(400, f"Request body must be a JSON object, got {type(data).__name__}.")
    try:
        return model(**data)
    except ValidationError as exc:
        raise pydantic_error(exc) from None


def check_model(requested: str | None, served: str) -> None:
    if requested is not None and requested != served:
        raise ApiError(404, f"The model `{requested}` does not exist.", "model")


def check_vocab(ids: list[int], vocab_size: int) -> None:
    bad = [t for t in ids if not 0 <= t < vocab_size]
    if bad:
        raise ApiError(400, f"Token id {max(bad, key=abs)} is out of vocabulary", "prompt")


def _prompts(prompt: Any, tokenizer: Tokenizer) -> list[Prompt]:
    if prompt is None or prompt == "" or prompt == []:
        raise ApiError(400, EMPTY_PROMPT, "prompt")
    if isinstance(prompt, str):
        items = [prompt]
    elif isinstance(prompt, list) and all(type(t) is int for t in prompt):
        items = [prompt]
    elif isinstance(prompt, list) and all(isinstance(p, (str, list)) for p in prompt):
        items = prompt
    else:
        raise ApiError(
            400,
            "prompt must be a string, a list of strings, a list of token ids, "
            "or a list of token id lists.",
            "prompt",
        )
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(Prompt(tokenizer.encode(item), item))
        elif all(type(t) is int for t in item):
            out.append(Prompt(list(item), tokenizer.decode(item)))
        else:
            raise ApiError(400, "A token id prompt must be a list of integers.", "prompt")
        if not out[-1].ids:
            raise ApiError(400, "The decoder prompt cannot be empty", "prompt")
    return out


def fit_prompt(
    ids: list[int], max_tokens: int | None, max_model_len: int, truncate: int | None, side: str
) -> tuple[list[int], int]:
    """(the prompt after truncate_prompt_tokens, max_tokens), or vLLM's context-length 400."""
    budget = max_model_len - (max_tokens or 0)
    if truncate is not None:
        keep = budget if truncate < 0 else truncate
        if keep < len(ids):
            ids = ids[-keep:] if side == "left" else ids[:keep]
    if max_tokens is None:  # vLLM: generate up to the context length
        max_tokens = max_model_len - len(ids)
    if len(ids) + max_tokens > max_model_len:
        total = len(ids) + max_tokens
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {max_tokens} output tokens and your prompt contains {len(ids)} input "
            f"tokens, for a total of {total} tokens. Please reduce the length of the input "
            "prompt or the number of requested output tokens.",
            "input_tokens",
        )
    return ids, max_tokens


def parse_completion(
    body: bytes,
    tokenizer: Tokenizer,
    model_name: str,
    max_model_len: int,
    *,
    check_token_ids: bool = True,
) -> Job:
    """Validate a request body into a Job; ApiError (4xx) with vLLM's message otherwise.

    `check_token_ids=False` lets out-of-vocabulary ids through (a fault the labs can inject).
    """
    data = parse_json(body)
    if (
        isinstance(data, dict)
        and data.get("prompt") in (None, "")
        and not data.get("prompt_embeds")
    ):
        raise ApiError(400, EMPTY_PROMPT, "prompt")
    req: CompletionRequest = validate(CompletionRequest, data)
    if (
        req.prompt_logprobs is not None
        and req.stream
        and (req.prompt_logprobs > 0 or req.prompt_logprobs == -1)
    ):
        raise ApiError(
            400, "`prompt_logprobs` are not available when `stream=True`.", "prompt_logprobs"
        )
    if req.logprobs is not None and req.logprobs < 0:
        raise ApiError(400, "`logprobs` must be a positive value.", "logprobs")
    check_model(req.model, model_name)
    if req.suffix is not None:
        raise ApiError(400, "suffix is not currently supported", "suffix")
    if req.prompt_embeds is not None:
        raise ApiError(400, "prompt_embeds is not supported by this server.", "prompt_embeds")
    prompts = _prompts(req.prompt, tokenizer)
    if check_token_ids:
        for p in prompts:
            check_vocab(p.ids, tokenizer.vocab_size)
    side = req.truncation_side or "left"
    fitted, max_tokens = [], req.max_tokens
    for p in prompts:
        ids, max_tokens = fit_prompt(
            p.ids, req.max_tokens, max_model_len, req.truncate_prompt_tokens, side
        )
        text = p.text if ids == p.ids else tokenizer.decode(ids)
        fitted.append(Prompt(ids, text))
    prompt_logprobs = req.prompt_logprobs
    if prompt_logprobs is None and req.echo:
        prompt_logprobs = req.logprobs
    params = sampling_params(
        req,
        max_tokens=max_tokens,
        vocab_size=tokenizer.vocab_size,
        logprobs=req.logprobs,
        prompt_logprobs=prompt_logprobs,
        check_token_ids=check_token_ids,
    )
    include_usage, continuous = stream_flags(req)
    return Job(
        kind="completion",
        request_id=f"cmpl-{req.request_id or uuid.uuid4().hex}",
        prompts=fitted,
        params=params,
        n=params.n,
        stream=bool(req.stream),
        include_usage=include_usage,
        continuous_usage=continuous,
        echo=bool(req.echo),
        logprobs=req.logprobs,
        return_token_ids=bool(req.return_token_ids),
        tokens_as_ids=bool(req.return_tokens_as_token_ids),
    )
