"""The request fields /v1/completions and /v1/chat/completions share, checked as vLLM checks them.

    >>> from labsupport.serving.sampling_fields import SamplingFields, sampling_params
    >>> fields = SamplingFields(temperature=0.5, presence_penalty=1.0, logit_bias={"65": 200})
    >>> params = sampling_params(fields, max_tokens=8, vocab_size=512)
    >>> params.temperature, params.presence_penalty, params.logit_bias
    (0.5, 1.0, ((65, 100.0),))

Every field vLLM accepts is accepted (`vllm/entrypoints/openai/completion/protocol.py` and
`chat_completion/protocol.py`). Those this engine can honour have vLLM's semantics: penalties,
`logit_bias` (clamped to [-100, 100], out-of-vocabulary ids refused), `top_k`, `min_p`,
`allowed_token_ids`, `stop`, `stop_token_ids`, `min_tokens`, `seed`, `n`, logprobs. Those
that cannot change this tiny engine's output are accepted and have no effect (`user`,
`ignore_eos` and `skip_special_tokens`: the tiny tokenizer has no EOS and no special tokens;
`cache_salt`, `kv_transfer_params`, `vllm_xargs`, `length_penalty` without beam search). Those
that would change the output and that it cannot honour (beam search, structured outputs,
logits processors, bad words, repetition detection, priorities) are a 400 "... is not
supported by this server", never silently ignored. Messages are vLLM's own
(`vllm/sampling_params.py`, `vllm/v1/engine/input_processor.py`).

Differences kept on purpose: a field neither vLLM nor OpenAI knows is a 400 naming it (vLLM
ignores it with a warning; here a typo like `max_token` must not pass silently), and values are
checked strictly (`"5"` is not a number).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from labsupport.serving.errors import ApiError
from labsupport.serving.requests import SamplingParams

MAX_LOGPROBS = 20  # vLLM's default --max-logprobs
MAX_N = 32
_LONG = 2**63


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class SamplingFields(BaseModel):
    """Fields of both endpoints; `extra="forbid"`: an unknown field is a 400 that names it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    model: str | None = None
    frequency_penalty: float | None = 0.0
    logit_bias: dict[str, float] | None = None
    n: int | None = 1
    presence_penalty: float | None = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    response_format: dict[str, Any] | None = None
    # vLLM's sampling extensions
    use_beam_search: bool = False
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    length_penalty: float = 1.0
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    min_tokens: int = 0
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)
    truncation_side: Literal["left", "right"] | None = None
    allowed_token_ids: list[int] | None = None
    prompt_logprobs: int | None = None
    # vLLM's extra parameters
    structured_outputs: dict[str, Any] | None = None
    priority: int = 0
    request_id: str | None = None
    logits_processors: list[Any] | None = None
    return_tokens_as_token_ids: bool | None = None
    return_token_ids: bool | None = None
    cache_salt: str | None = None
    kv_transfer_params: dict[str, Any] | None = None
    vllm_xargs: dict[str, Any] | None = None
    max_repetition_pattern_size: int = 0
    min_repetition_pattern_size: int = 0
    repetition_min_count: int = 0


def not_supported(what: str, param: str) -> ApiError:
    return ApiError(400, f"{what} is not supported by this server.", param)


def check_unsupported(f: SamplingFields) -> None:
    """400 for what would change the output and that this engine cannot do."""
    if f.use_beam_search:
        raise not_supported("Beam search (use_beam_search)", "use_beam_search")
    if f.structured_outputs is not None:
        raise not_supported("Structured outputs", "structured_outputs")
    if f.response_format is not None and f.response_format.get("type") != "text":
        raise not_supported(f"response_format {f.response_format.get('type')!r}", "response_format")
    if f.logits_processors:
        raise ApiError(
            400,
            "vLLM V1 does not support per request user provided logits processors.",
            "logits_processors",
        )
    if f.max_repetition_pattern_size or f.min_repetition_pattern_size or f.repetition_min_count:
        raise not_supported("Repetition detection", "max_repetition_pattern_size")
    if f.priority != 0:
        raise ApiError(
            400,
            "Priority scheduling is not enabled on this server (priority must be 0).",
            "priority",
        )
    if f.cache_salt is not None and not f.cache_salt:
        raise ApiError(400, "Parameter 'cache_salt' must be a non-empty string if provided.")


def _bias(
    raw: dict[str, float] | None, vocab_size: int, check_ids: bool = True
) -> tuple[tuple[int, float], ...]:
    if not raw:
        return ()
    bad = []
    out = {}
    for key, bias in raw.items():
        try:
            out[int(key)] = min(100.0, max(-100.0, float(bias)))
        except ValueError:
            bad.append(key)
    if bad:
        raise ApiError(
            400,
            f"logit_bias contains key(s) that cannot be converted to integer token IDs: {bad!r}",
            "logit_bias",
        )
    outside = [t for t in out if not 0 <= t < vocab_size]
    if outside and check_ids:
        raise ApiError(
            400,
            f"token_id(s) {outside} in logit_bias contain out-of-vocab token ids. "
            f"Vocabulary size: {vocab_size}",
            "logit_bias",
        )
    return tuple(sorted(out.items()))


def _check_range(f: SamplingFields, temperature: float, top_p: float, top_k: int, min_p: float):
    checks = [
        (f.n is not None and f.n < 1, f"n must be at least 1, got {f.n}.", "n"),
        (f.n is not None and f.n > MAX_N, f"n must be at most {MAX_N}, got {f.n}.", "n"),
        (not -2.0 <= (f.presence_penalty or 0.0) <= 2.0,
         f"presence_penalty must be in [-2, 2], got {f.presence_penalty}.", "presence_penalty"),
        (not -2.0 <= (f.frequency_penalty or 0.0) <= 2.0,
         f"frequency_penalty must be in [-2, 2], got {f.frequency_penalty}.", "frequency_penalty"),
        (f.repetition_penalty is not None and not (
            math.isfinite(f.repetition_penalty) and f.repetition_penalty > 0),
         f"repetition_penalty must be greater than zero, got {f.repetition_penalty}.",
         "repetition_penalty"),
        (not math.isfinite(temperature) or temperature < 0.0,
         f"temperature must be non-negative, got {temperature}.", "temperature"),
        (temperature > 2.0, f"temperature must be in [0, 2], got {temperature}.", "temperature"),
        (not 0.0 < top_p <= 1.0, f"top_p must be in (0, 1], got {top_p}.", "top_p"),
        (top_k < -1, f"top_k must be 0 (disable), or at least 1, got {top_k}.", "top_k"),
        (not 0.0 <= min_p <= 1.0, f"min_p must be in [0, 1], got {min_p}.", "min_p"),
        (f.min_tokens < 0,
         f"min_tokens must be greater than or equal to 0, got {f.min_tokens}.", "min_tokens"),
        (f.seed is not None and not -_LONG <= f.seed < _LONG,
         f"seed must be a 64-bit integer, got {f.seed}.", "seed"),
    ]  # fmt: skip
    for failed, message, param in checks:
        if failed:
            raise ApiError(400, message, param)


def _check_logprobs(value: int | None, what: str, vocab_size: int) -> int | None:
    if value is None:
        return None
    if value < 0 and value != -1:
        raise ApiError(400, f"`{what}` must be a positive value or -1.", what)
    wanted = vocab_size if value == -1 else value
    if wanted > MAX_LOGPROBS:
        kind = "prompt" if what == "prompt_logprobs" else "sample"
        raise ApiError(
            400,
            f"Requested {kind} logprobs of {wanted}, which is greater than max allowed: "
            f"{MAX_LOGPROBS}",
            what,
        )
    return value


def sampling_params(
    f: SamplingFields,
    *,
    max_tokens: int,
    vocab_size: int,
    logprobs: int | None = None,
    logprobs_field: str = "logprobs",
    prompt_logprobs: int | None = None,
    check_token_ids: bool = True,
) -> SamplingParams:
    """The engine's SamplingParams for these fields, or ApiError 400 with vLLM's message.

    `check_token_ids=False` lets out-of-vocabulary ids in `allowed_token_ids` and `logit_bias`
    through, as the prompt's (the `no_input_validation` fault).
    """
    check_unsupported(f)
    temperature = 1.0 if f.temperature is None else f.temperature
    top_p = 1.0 if f.top_p is None else f.top_p
    top_k = 0 if f.top_k in (None, -1) else f.top_k
    min_p = 0.0 if f.min_p is None else f.min_p
    _check_range(f, temperature, top_p, top_k, min_p)
    n = f.n or 1
    if n > 1 and temperature < 1e-5:
        raise ApiError(400, f"n must be 1 when using greedy sampling, got {n}.", "n")
    if max_tokens < 1:
        raise ApiError(400, f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
    if f.min_tokens > max_tokens:
        raise ApiError(
            400,
            f"min_tokens must be less than or equal to max_tokens={max_tokens}, "
            f"got {f.min_tokens}.",
            "min_tokens",
        )
    stop = [f.stop] if isinstance(f.stop, str) else list(f.stop or [])
    if any(not s for s in stop):
        raise ApiError(400, "stop cannot contain an empty string.", "stop")
    stop_ids = list(f.stop_token_ids or [])
    if f.allowed_token_ids is not None:
        if not f.allowed_token_ids:
            raise ApiError(400, "allowed_token_ids is not None and empty!", "allowed_token_ids")
        if check_token_ids and not all(0 <= t < vocab_size for t in f.allowed_token_ids):
            raise ApiError(
                400, "allowed_token_ids contains out-of-vocab token id!", "allowed_token_ids"
            )
    greedy = temperature < 1e-5
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=1.0 if greedy else top_p,
        seed=None if f.seed == -1 else f.seed,
        top_k=0 if greedy else top_k,
        min_p=0.0 if greedy else min_p,
        presence_penalty=f.presence_penalty or 0.0,
        frequency_penalty=f.frequency_penalty or 0.0,
        repetition_penalty=1.0 if f.repetition_penalty is None else f.repetition_penalty,
        logit_bias=_bias(f.logit_bias, vocab_size, check_token_ids),
        allowed_token_ids=None if f.allowed_token_ids is None else tuple(f.allowed_token_ids),
        stop=tuple(stop),
        stop_token_ids=tuple(stop_ids),
        include_stop_str_in_output=f.include_stop_str_in_output,
        min_tokens=f.min_tokens,
        logprobs=_check_logprobs(logprobs, logprobs_field, vocab_size),
        prompt_logprobs=_check_logprobs(prompt_logprobs, "prompt_logprobs", vocab_size),
        n=n,
    )


def stream_flags(f: SamplingFields) -> tuple[bool, bool]:
    """(include_usage, continuous_usage_stats), refusing stream_options without stream."""
    if f.stream_options is not None and f.stream_options.model_fields_set and not f.stream:
        # vLLM's test is the raw value's truth: null and {} pass, any other object is refused
        raise ApiError(
            400, "Stream options can only be defined when `stream=True`.", "stream_options"
        )
    opts = f.stream_options
    if not f.stream or opts is None:
        return False, False
    include = bool(opts.include_usage)
    return include, include and bool(opts.continuous_usage_stats)
