"""Ported from vLLM tests/entrypoints/openai/completion/test_stream_frame_template.py at
b8365a0f2d81f41f7caae9c1612eec20be8e5774.

vLLM checks that its fast per-stream frame template writes the bytes its pydantic response
models would. Here the frame our server writes (`streaming.sse` of `responses.completion_chunk`)
must be byte-identical to the frame vLLM's models write, rebuilt below with pydantic from
vLLM's field list (`CompletionStreamResponse`, `model_dump_json(exclude_unset=True)`).
Out of scope (docs/peer_scope.md): test_template_is_none_when_sentinels_are_ambiguous, a
property of vLLM's template implementation, which this server does not have.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from labsupport.serving.responses import completion_chunk
from labsupport.serving.streaming import sse

CREATED = 1706000000


class CompletionResponseStreamChoice(BaseModel):  # vLLM's fields, in vLLM's order
    index: int
    text: str
    logprobs: dict | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    prompt_token_ids: list[int] | None = None
    token_ids: list[int] | None = None


class CompletionStreamResponse(BaseModel):
    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[CompletionResponseStreamChoice]
    usage: dict | None = None


def model_frame(request_id: str, model_name: str, index: int, text: str) -> str:
    chunk = CompletionStreamResponse(
        id=request_id,
        object="text_completion",
        created=CREATED,
        model=model_name,
        choices=[
            CompletionResponseStreamChoice(
                index=index, text=text, logprobs=None, finish_reason=None, stop_reason=None,
                prompt_token_ids=None, token_ids=None,
            )
        ],
    )  # fmt: skip
    return f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello, world",
        ' "quoted" and \\backslashed\\ ',
        "line\nbreaks\r\ttabs",
        "\x00\x01\x1f\x7f",
        "unicode é 日本語 🚀 \U0001d549\U0010ffff",
    ],  # fmt: skip
)
@pytest.mark.parametrize(
    ("request_id", "model_name", "index"),
    [("cmpl-abc123", "meta-llama/Llama-3.1-8B", 0), ('id "with" quotes\\', "модель 🎯", 7)],
)
def test_template_frame_matches_model_frame(request_id, model_name, index, text):
    chunk = completion_chunk(request_id, model_name, index, text)
    chunk["created"] = CREATED
    assert sse(chunk) == model_frame(request_id, model_name, index, text)


def test_delta_chunk_fields_are_frozen():
    chunk = completion_chunk("cmpl-1", "m", 0, "x")
    assert set(chunk["choices"][0]) == set(CompletionResponseStreamChoice.model_fields) == {
        "index", "text", "logprobs", "finish_reason", "stop_reason", "prompt_token_ids",
        "token_ids",
    }  # fmt: skip
