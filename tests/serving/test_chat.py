import json

import pytest

from labsupport.serving.chat import parse_chat, render
from labsupport.serving.errors import ApiError
from labsupport.serving.model import Tokenizer

TOK = Tokenizer()
USER = {"role": "user", "content": "Hi"}


def parse(**body):
    return parse_chat(json.dumps(body).encode(), TOK, "tiny", 128)


def test_template_renders_roles_and_the_generation_prompt():
    two = [{"role": "system", "content": "Be brief."}, USER]
    assert render(two) == "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n"
    assert render([USER], add_generation_prompt=False) == "<|user|>\nHi<|end|>\n"
    prefill = [USER, {"role": "assistant", "content": "Hel"}]
    assert render(prefill, add_generation_prompt=False, continue_final_message=True).endswith(
        "<|assistant|>\nHel"
    )
    assert render([{"role": "user", "content": "{{ 7*7 }}"}]).count("{{ 7*7 }}") == 1  # data


def test_fields():
    job = parse(messages=[USER], max_completion_tokens=5, temperature=0, logprobs=True,
                top_logprobs=3, seed=1)  # fmt: skip
    assert job.kind == "chat" and job.request_id.startswith("chatcmpl-")
    assert job.prompts[0].text == render([USER]) and job.params.max_tokens == 5
    assert job.logprobs == 3 and job.params.logprobs == 3
    assert parse(messages=[USER], max_tokens=7).params.max_tokens == 7  # the deprecated name
    rest = parse(messages=[USER]).params.max_tokens
    assert rest == 128 - len(TOK.encode(render([USER])))
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert "a\nb" in parse(messages=[{"role": "user", "content": parts}]).prompts[0].text
    echo = parse(messages=[USER, {"role": "assistant", "content": "So"}], echo=True,
                 add_generation_prompt=False, continue_final_message=True)  # fmt: skip
    assert echo.echo_text == "So"
    assert parse(messages=[USER], echo=True).echo_text == ""  # last role is not the answer's
    assert parse(messages=[USER], tools=[{"type": "function"}], tool_choice="none").n == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"messages": []}, "at least one"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role must be"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "not supported"),
        ({"messages": [USER], "top_logprobs": 2}, "`logprobs` must be set to true"),
        ({"messages": [USER], "logprobs": True, "top_logprobs": -2}, "positive value or -1"),
        ({"messages": [USER], "logprobs": True, "top_logprobs": 21}, "max allowed: 20"),
        ({"messages": [USER], "continue_final_message": True}, "Cannot set both"),
        ({"messages": [USER], "chat_template": "{{ x }}"}, "untrusted chat template"),
        (
            {"messages": [USER], "tools": [{"type": "function"}], "tool_choice": "auto"},
            "not supported",
        ),
        ({"messages": [USER], "bad_words": ["x"]}, "not supported"),
        ({"messages": [USER], "model": "x"}, "does not exist"),
        ({"messages": [USER], "max_completion_tokens": 1000}, "maximum context length"),
        ({"messages": [USER], "stream_options": {"include_usage": True}}, "stream=True"),
        ({"messages": [USER], "nope": 1}, "Unknown field(s): nope"),
        ({"prompt": "x"}, "messages"),
    ],  # fmt: skip
)
def test_bad_chat_requests(body, words):
    with pytest.raises(ApiError) as info:
        parse_chat(json.dumps(body).encode(), TOK, "tiny", 128)
    assert words in info.value.message and 400 <= info.value.status < 500
