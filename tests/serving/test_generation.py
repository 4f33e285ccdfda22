import asyncio
import json

import pytest

from labsupport.serving.chat import parse_chat
from labsupport.serving.engine import Engine
from labsupport.serving.faults import FaultController
from labsupport.serving.generation import (
    chat_response,
    collect,
    completion_response,
    failure,
    submit,
)
from labsupport.serving.model import ModelConfig
from labsupport.serving.protocol import parse_completion
from labsupport.serving.state import ServerState


@pytest.fixture(scope="module")
def state():
    s = ServerState(Engine.build(ModelConfig(max_model_len=128)).start(), faults=FaultController())
    yield s
    s.engine.stop()


def run(state, body: dict, parse=parse_completion):
    job = parse(json.dumps(body).encode(), state.tokenizer, state.model_name, 128)

    async def main():
        choices = submit(state, job)
        for c in choices:
            await collect(c)
        return choices

    return job, asyncio.run(main())


def test_prompts_times_samples_in_vllms_order(state):
    job, choices = run(state, {"prompt": ["ab", [1, 2, 3]], "max_tokens": 3, "n": 2,
                               "temperature": 1.0, "seed": 4})  # fmt: skip
    body = completion_response(state, job, choices)
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 17, "completion_tokens": 12,
                             "prompt_tokens_details": None}  # fmt: skip
    texts = [c["text"] for c in body["choices"]]
    again = completion_response(
        state,
        *run(
            state,
            {"prompt": ["ab", [1, 2, 3]], "max_tokens": 3, "n": 2, "temperature": 1.0, "seed": 4},
        ),
    )
    assert texts == [c["text"] for c in again["choices"]]  # seeded: reproducible  # fmt: skip


def test_echo_logprobs_and_token_ids(state):
    job, choices = run(state, {"prompt": "Hey", "max_tokens": 2, "temperature": 0, "echo": True,
                               "logprobs": 1, "return_token_ids": True})  # fmt: skip
    (choice,) = completion_response(state, job, choices)["choices"]
    assert choice["prompt_token_ids"] == [72, 101, 121] and len(choice["token_ids"]) == 2
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == 5 and lp["token_logprobs"][0] is None
    assert all(1 <= len(top) <= 2 for top in lp["top_logprobs"][1:])
    assert choice["prompt_logprobs"][0] is None and len(choice["prompt_logprobs"]) == 3
    job, choices = run(state, {"prompt": "Hey", "max_tokens": 2, "temperature": 0, "echo": True})
    assert completion_response(state, job, choices)["choices"][0]["text"].startswith("Hey")


def test_stop_strings_end_a_choice_with_its_reason(state):
    job, choices = run(state, {"prompt": "Hi", "max_tokens": 40, "temperature": 0})
    text = choices[0].text
    cut = text[3:5]
    job, choices = run(state, {"prompt": "Hi", "max_tokens": 40, "temperature": 0, "stop": [cut]})
    (choice,) = completion_response(state, job, choices)["choices"]
    assert choice["finish_reason"] == "stop" and choice["stop_reason"] == cut
    assert choice["text"] == text[: text.find(cut)]


def test_chat_answers_as_the_assistant(state):
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 3,
            "temperature": 0, "logprobs": True, "top_logprobs": 2}  # fmt: skip
    job, choices = run(state, body, parse_chat)
    out = chat_response(state, job, choices)
    (choice,) = out["choices"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
    assert len(choice["logprobs"]["content"]) == 3 and out["usage"]["completion_tokens"] == 3


def test_an_aborted_choice_fails_the_response(state):
    job = parse_completion(b'{"prompt": "x", "max_tokens": 100}', state.tokenizer, "srelab-tiny",
                           128)  # fmt: skip

    async def main():
        (c,) = submit(state, job)
        c.handle.abort()
        await collect(c)
        return c

    err = failure([asyncio.run(main())])
    assert err.status == 503 and "aborted" in err.message
