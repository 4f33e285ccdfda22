import json

import pytest

from labsupport.serving.model import Tokenizer
from labsupport.serving.protocol import (
    ApiError,
    chunk_body,
    completion_body,
    parse_completion,
    sse,
    usage_chunk,
)

TOK = Tokenizer(512)


def parse(body, max_model_len=64):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_completion(raw, TOK, "tiny", max_model_len)


def test_defaults_and_fields():
    req = parse({"prompt": "Hi"})
    assert req.prompt_ids == [72, 105] and not req.stream and not req.include_usage
    assert (req.params.max_tokens, req.params.temperature, req.params.seed) == (16, 1.0, None)
    req = parse(
        {
            "model": "tiny",
            "prompt": ["Hi"],
            "max_tokens": 5,
            "temperature": 0,
            "top_p": 0.5,
            "seed": 9,
            "stream": True,
            "stream_options": {"include_usage": True},
            "stop": None,
            "user": "u",
            "n": 1,
        }
    )
    assert req.params.max_tokens == 5 and req.params.seed == 9 and req.include_usage
    assert parse({"prompt": [1, 2, 511]}).prompt_ids == [1, 2, 511]
    assert parse({"prompt": "x", "max_tokens": None}).params.max_tokens == 16


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        (b"not json", 400, None, "not valid JSON"),
        (b"[1, 2]", 400, None, "JSON object"),
        ({"prompt": "x", "foo": 1, "bar": 2}, 400, "foo", "Unknown field(s): foo, bar"),
        ({}, 400, "prompt", "required"),
        ({"prompt": ""}, 400, "prompt", "empty"),
        ({"prompt": []}, 400, "prompt", "empty"),
        ({"prompt": ["a", "b"]}, 400, "prompt", "one prompt"),
        ({"prompt": {"a": 1}}, 400, "prompt", "must be a string"),
        ({"prompt": [1, 512]}, 400, "prompt", "Token id 512 is out of range"),
        ({"prompt": [1, -1]}, 400, "prompt", "out of range"),
        ({"prompt": "x" * 64}, 400, "prompt", "maximum context length"),
        ({"prompt": "x", "max_tokens": -1}, 400, "max_tokens", "at least 1"),
        ({"prompt": "x", "max_tokens": 0}, 400, "max_tokens", "at least 1"),
        ({"prompt": "x", "max_tokens": 10**9}, 400, "max_tokens", "maximum context length"),
        ({"prompt": "x", "max_tokens": "5"}, 400, "max_tokens", "valid integer"),
        ({"prompt": "x", "max_tokens": True}, 400, "max_tokens", "valid integer"),
        ({"prompt": "x", "temperature": 3}, 400, "temperature", "[0, 2]"),
        ({"prompt": "x", "top_p": 0}, 400, "top_p", "(0, 1]"),
        ({"prompt": "x", "n": 2}, 400, "n", "n=1"),
        ({"prompt": "x", "stop": ["\n"]}, 400, "stop", "not supported"),
        ({"prompt": "x", "seed": -1}, 400, "seed", "seed"),
        ({"prompt": "x", "stream": "yes"}, 400, "stream", "boolean"),
        (
            {"prompt": "x", "stream_options": {"include_usage": True}},
            400,
            "stream_options",
            "stream",
        ),
        ({"prompt": "x", "model": "gpt-4"}, 404, "model", "does not exist"),
    ],
)
def test_bad_requests_get_a_clear_4xx(body, status, param, words):
    with pytest.raises(ApiError) as info:
        parse(body)
    err = info.value
    assert err.status == status and err.param == param
    assert words in err.message
    body = err.body()["error"]
    assert body["code"] == status and body["message"] == err.message and body["type"]


def test_response_bodies_follow_openai():
    body = completion_body("cmpl-1", "tiny", "abc", "length", 2, 3)
    assert body["object"] == "text_completion" and body["choices"][0]["text"] == "abc"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    chunk = chunk_body("cmpl-1", "tiny", "a", None)
    assert chunk["choices"][0]["finish_reason"] is None and "usage" not in chunk
    assert usage_chunk("cmpl-1", "tiny", 2, 3)["choices"] == []
    event = sse({"a": 1})
    assert event == 'data: {"a":1}\n\n'
