"""The OpenAI completions protocol: request validation, response bodies, server-sent events.

    >>> from labsupport.serving.protocol import ApiError, parse_completion
    >>> from labsupport.serving.model import Tokenizer
    >>> req = parse_completion(b'{"prompt": "Hi", "max_tokens": 4}', Tokenizer(), "m", 1024)
    >>> req.prompt_ids, req.params.max_tokens
    ([72, 105], 4)
    >>> try:
    ...     parse_completion(b'{"prompt": "Hi", "max_tokens": -1}', Tokenizer(), "m", 1024)
    ... except ApiError as e:
    ...     print(e.status, e.param)
    400 max_tokens

Every bad request gets a 4xx with an OpenAI-style body
`{"error": {"message": ..., "type": ..., "param": ..., "code": status}}` that says what was
wrong, instead of a 500 or a traceback.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from labsupport.serving.bodies import MAX_BODY_BYTES, parse_json
from labsupport.serving.errors import ApiError
from labsupport.serving.model import Tokenizer
from labsupport.serving.requests import SamplingParams

__all__ = ["MAX_BODY_BYTES", "SSE_DONE", "ApiError", "parse_completion"]

SSE_DONE = "data: [DONE]\n\n"


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool = False


class CompletionRequest(BaseModel):
    """The fields of POST /v1/completions this server accepts; anything else is a 400."""

    model_config = ConfigDict(extra="forbid", strict=True)
    prompt: Any = None
    model: str | None = None
    max_tokens: int | None = 16
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stream: bool = False
    stream_options: _StreamOptions | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    user: str | None = None
    ignore_eos: bool = False  # vLLM's extension; there is no EOS here anyway


@dataclass(frozen=True)
class ValidatedRequest:
    prompt_ids: list[int]
    params: SamplingParams
    stream: bool
    include_usage: bool


def _pydantic_error(exc: ValidationError) -> ApiError:
    errors = exc.errors()
    extra = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden"]
    if extra:
        allowed = ", ".join(CompletionRequest.model_fields)
        return ApiError(
            400, f"Unknown field(s): {', '.join(extra)}. Accepted: {allowed}.", extra[0]
        )
    e = errors[0]
    param = ".".join(str(p) for p in e["loc"])
    return ApiError(400, f"{param}: {e['msg']} (got {e.get('input')!r})", param)


def _prompt_ids(prompt: Any, tokenizer: Tokenizer, check_ids: bool = True) -> list[int]:
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) != 1:
            raise ApiError(
                400, f"Send one prompt per request, got a list of {len(prompt)}.", "prompt"
            )
        prompt = prompt[0]
    if isinstance(prompt, str):
        ids = tokenizer.encode(prompt)
    elif isinstance(prompt, list) and all(type(t) is int for t in prompt):
        ids = list(prompt)
        bad = [t for t in ids if not 0 <= t < tokenizer.vocab_size]
        if bad and check_ids:
            raise ApiError(
                400, f"Token id {bad[0]} is out of range [0, {tokenizer.vocab_size}).", "prompt"
            )
    elif prompt is None:
        raise ApiError(400, "Field 'prompt' is required.", "prompt")
    else:
        raise ApiError(
            400, "prompt must be a string, a list of one string, or a list of token ids.", "prompt"
        )
    if not ids:
        raise ApiError(400, "prompt must not be empty.", "prompt")
    return ids


def parse_completion(
    body: bytes,
    tokenizer: Tokenizer,
    model_name: str,
    max_model_len: int,
    *,
    check_token_ids: bool = True,
) -> ValidatedRequest:
    """Validate a request body; raises ApiError (4xx) with a message saying what is wrong.

    `check_token_ids=False` lets out-of-vocabulary ids through (the bug of lab 285).
    """
    data = parse_json(body)
    if not isinstance(data, dict):
        raise ApiError(400, f"Request body must be a JSON object, got {type(data).__name__}.")
    try:
        req = CompletionRequest(**data)
    except ValidationError as exc:
        raise _pydantic_error(exc) from None
    if req.model is not None and req.model != model_name:
        raise ApiError(404, f"The model `{req.model}` does not exist.", "model")
    ids = _prompt_ids(req.prompt, tokenizer, check_token_ids)
    if len(ids) >= max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens; "
            f"the prompt has {len(ids)} tokens.",
            "prompt",
        )
    max_tokens = 16 if req.max_tokens is None else req.max_tokens
    if max_tokens < 1:
        raise ApiError(400, f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
    if len(ids) + max_tokens > max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {len(ids) + max_tokens} tokens ({len(ids)} in the prompt, {max_tokens} "
            "in the completion).",
            "max_tokens",
        )
    if not 0.0 <= req.temperature <= 2.0:
        raise ApiError(400, f"temperature must be in [0, 2], got {req.temperature}.", "temperature")
    if not 0.0 < req.top_p <= 1.0:
        raise ApiError(400, f"top_p must be in (0, 1], got {req.top_p}.", "top_p")
    if req.n != 1:
        raise ApiError(400, f"Only n=1 is supported, got n={req.n}.", "n")
    if req.stop:
        raise ApiError(400, "Stop sequences are not supported by this server.", "stop")
    if req.seed is not None and not 0 <= req.seed < 2**63:
        raise ApiError(400, f"seed must be in [0, 2**63), got {req.seed}.", "seed")
    if req.stream_options is not None and not req.stream:
        raise ApiError(400, "stream_options is only allowed when stream is true.", "stream_options")
    params = SamplingParams(max_tokens, req.temperature, req.top_p, req.seed)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return ValidatedRequest(ids, params, req.stream, include_usage)


# -- responses ------------------------------------------------------------------------------------
def completion_body(
    rid: str, model: str, text: str, finish_reason: str | None, n_prompt: int, n_out: int
) -> dict:
    usage = {
        "prompt_tokens": n_prompt,
        "completion_tokens": n_out,
        "total_tokens": n_prompt + n_out,
    }
    return {**chunk_body(rid, model, text, finish_reason), "usage": usage}


def chunk_body(rid: str, model: str, text: str, finish_reason: str | None) -> dict:
    return {
        "id": rid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
    }


def usage_chunk(rid: str, model: str, n_prompt: int, n_out: int) -> dict:
    body = chunk_body(rid, model, "", None)
    body["choices"] = []
    body["usage"] = {
        "prompt_tokens": n_prompt,
        "completion_tokens": n_out,
        "total_tokens": n_prompt + n_out,
    }
    return body


def sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"
