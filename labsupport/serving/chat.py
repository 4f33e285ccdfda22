"""POST /v1/chat/completions: messages rendered with the tiny model's chat template, into a Job.

    >>> from labsupport.serving.chat import parse_chat, render
    >>> from labsupport.serving.model import Tokenizer
    >>> print(render([{"role": "user", "content": "Hi"}]), end="")
    <|user|>
    Hi<|end|>
    <|assistant|>
    >>> job = parse_chat(b'{"messages": [{"role": "user", "content": "Hi"}]}', Tokenizer(), "m", 64)
    >>> job.kind, job.request_id[:9], job.params.max_tokens == 64 - len(job.prompts[0].ids)
    ('chat', 'chatcmpl-', True)

The template is a Jinja template, rendered in Jinja's sandbox as `transformers` renders a chat
template: each message as `<|role|>\\ncontent<|end|>\\n`, then `<|assistant|>\\n` when
`add_generation_prompt` (the default), or the last message left open with
`continue_final_message`. Content is a string or a list of `{"type": "text"}` parts; images,
audio and other parts, tool calling and templates sent with the request are refused with a
400 (the tiny model reads text, and a request-supplied template is untrusted code).
Everything else follows vLLM's `chat_completion/protocol.py`: `max_completion_tokens` (or the
deprecated `max_tokens`, or the rest of the context), `logprobs` + `top_logprobs`, `echo`.
"""

from __future__ import annotations

import uuid
from typing import Any

import jinja2.sandbox

from labsupport.serving.bodies import parse_json
from labsupport.serving.errors import ApiError
from labsupport.serving.model import Tokenizer
from labsupport.serving.protocol import (
    Job,
    Prompt,
    check_model,
    check_vocab,
    fit_prompt,
    validate,
)
from labsupport.serving.sampling_fields import (
    SamplingFields,
    not_supported,
    sampling_params,
    stream_flags,
)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message.role }}|>\n{{ message.content }}"
    "{% if not (loop.last and continue_final_message) %}<|end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
ROLES = ("system", "developer", "user", "assistant", "tool")
_TEMPLATE = jinja2.sandbox.ImmutableSandboxedEnvironment(autoescape=False).from_string(
    CHAT_TEMPLATE
)


class ChatCompletionRequest(SamplingFields):
    """The fields of POST /v1/chat/completions (vLLM's `ChatCompletionRequest`)."""

    messages: list[Any]
    logprobs: bool | None = False
    top_logprobs: int | None = 0
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    tools: list[Any] | None = None
    tool_choice: Any = "none"
    reasoning_effort: str | None = None
    include_reasoning: bool = True
    parallel_tool_calls: bool | None = True
    bad_words: list[str] = []
    echo: bool = False
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    add_special_tokens: bool = False
    documents: list[dict[str, str]] | None = None
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None


def _text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise ApiError(400, f"{where}: content must be a string or a list of parts.", "messages")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text" or not isinstance(part.get("text"), str):
            raise ApiError(
                400,
                f"{where}: content part type {kind!r} is not supported by this server "
                "(the tiny model reads text parts only).",
                "messages",
            )
        texts.append(part["text"])
    return "\n".join(texts)


def conversation(messages: list[Any]) -> list[dict[str, str]]:
    """The messages as {role, content} with text content; ApiError 400 for anything else."""
    if not messages:
        raise ApiError(400, "messages must contain at least one message.", "messages")
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"{where}: role must be one of {', '.join(ROLES)}.", "messages")
        out.append({"role": m["role"], "content": _text(m.get("content"), where)})
    return out


def render(
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
) -> str:
    return _TEMPLATE.render(
        messages=messages,
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message,
    )


def _check(req: ChatCompletionRequest) -> None:
    if (
        req.prompt_logprobs is not None
        and req.stream
        and (req.prompt_logprobs > 0 or req.prompt_logprobs == -1)
    ):
        raise ApiError(
            400, "`prompt_logprobs` are not available when `stream=True`.", "prompt_logprobs"
        )
    top = req.top_logprobs
    if top is not None and top < 0 and top != -1:
        raise ApiError(400, "`top_logprobs` must be a positive value or -1.", "top_logprobs")
    if top is not None and (top == -1 or top > 0) and not req.logprobs:
        raise ApiError(
            400, "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs"
        )
    if req.continue_final_message and req.add_generation_prompt:
        raise ApiError(
            400, "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
        )
    if req.chat_template is not None:
        raise ApiError(
            400,
            "Chat template is passed with request, but this server does not trust request "
            "chat templates. Refused request with untrusted chat template.",
            "chat_template",
        )
    if req.tools and req.tool_choice not in (None, "none"):
        raise not_supported("Tool calling", "tool_choice")
    if req.bad_words:
        raise not_supported("bad_words", "bad_words")


def parse_chat(
    body: bytes,
    tokenizer: Tokenizer,
    model_name: str,
    max_model_len: int,
    *,
    check_token_ids: bool = True,
) -> Job:
    """Validate a chat request into a Job (one prompt: the rendered conversation)."""
    req: ChatCompletionRequest = validate(ChatCompletionRequest, parse_json(body))
    _check(req)
    check_model(req.model, model_name)
    turns = conversation(req.messages)
    text = render(
        turns,
        add_generation_prompt=req.add_generation_prompt,
        continue_final_message=req.continue_final_message,
    )
    ids = tokenizer.encode(text)
    if check_token_ids:
        check_vocab(ids, tokenizer.vocab_size)
    wanted = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    ids, max_tokens = fit_prompt(
        ids, wanted, max_model_len, req.truncate_prompt_tokens, req.truncation_side or "left"
    )
    logprobs = req.top_logprobs if req.logprobs else None
    prompt_logprobs = req.prompt_logprobs
    if prompt_logprobs is None and req.echo:
        prompt_logprobs = logprobs
    params = sampling_params(
        req,
        max_tokens=max_tokens,
        vocab_size=tokenizer.vocab_size,
        logprobs=logprobs,
        logprobs_field="top_logprobs",
        prompt_logprobs=prompt_logprobs,
        check_token_ids=check_token_ids,
    )
    include_usage, continuous = stream_flags(req)
    role = "assistant" if req.add_generation_prompt else turns[-1]["role"]
    echo_text = turns[-1]["content"] if req.echo and turns[-1]["role"] == role else ""
    return Job(
        kind="chat",
        request_id=f"chatcmpl-{req.request_id or uuid.uuid4().hex}",
        prompts=[Prompt(ids, text)],
        params=params,
        n=params.n,
        stream=bool(req.stream),
        include_usage=include_usage,
        continuous_usage=continuous,
        echo=req.echo,
        logprobs=logprobs,
        return_token_ids=bool(req.return_token_ids),
        tokens_as_ids=bool(req.return_tokens_as_token_ids),
        echo_text=echo_text,
    )
