import asyncio
import json

import pytest

from labsupport.serving.chat import parse_chat
from labsupport.serving.engine import Engine
from labsupport.serving.faults import FaultController
from labsupport.serving.generation import submit
from labsupport.serving.model import ModelConfig
from labsupport.serving.protocol import parse_completion
from labsupport.serving.state import ServerState
from labsupport.serving.streaming import events, sse


@pytest.fixture(scope="module")
def state():
    s = ServerState(Engine.build(ModelConfig(max_model_len=128)).start(), faults=FaultController())
    yield s
    s.engine.stop()


def stream(state, body: dict, parse=parse_completion, abort_after=None):
    job = parse(json.dumps({**body, "stream": True}).encode(), state.tokenizer, "srelab-tiny",
                128)  # fmt: skip

    async def main():
        choices, done, out = submit(state, job), [], []
        async for event in events(state, job, choices, done):
            out.append(event)
            if abort_after is not None and len(out) == abort_after:
                for c in choices:
                    c.handle.abort()
        assert done == [True]
        return out

    lines = asyncio.run(main())
    assert all(e.startswith("data: ") and e.endswith("\n\n") for e in lines)
    assert lines[-1] == "data: [DONE]\n\n"
    return [json.loads(e[6:]) for e in lines[:-1]]


def test_several_choices_merge_with_their_indices_and_usage(state):
    chunks = stream(state, {"prompt": ["a", "b"], "max_tokens": 3, "n": 2, "temperature": 1.0,
                            "stream_options": {"include_usage": True,
                                               "continuous_usage_stats": True}})  # fmt: skip
    tokens, last = chunks[:-1], chunks[-1]
    assert sorted({c["choices"][0]["index"] for c in tokens}) == [0, 1, 2, 3] and len(tokens) == 12
    ends = [c for c in tokens if c["choices"][0]["finish_reason"]]
    assert len(ends) == 4 and all(c["choices"][0]["finish_reason"] == "length" for c in ends)
    assert all(c["usage"]["prompt_tokens"] == 1 for c in tokens)
    assert last["choices"] == [] and last["usage"] == {"prompt_tokens": 2, "total_tokens": 14,
                                                       "completion_tokens": 12}  # fmt: skip


def test_echo_and_token_ids_come_with_the_first_chunk(state):
    chunks = stream(state, {"prompt": "Hey", "max_tokens": 2, "echo": True,
                            "return_token_ids": True, "logprobs": 0})  # fmt: skip
    first, second = (c["choices"][0] for c in chunks)
    assert first["prompt_token_ids"] == [72, 101, 121]  # vLLM: echoed as ids, not as text
    assert len(first["logprobs"]["tokens"]) == 4 and second["prompt_token_ids"] is None
    chunks = stream(state, {"prompt": "Hey", "max_tokens": 2, "echo": True})
    assert chunks[0]["choices"][0]["text"].startswith("Hey")


def test_chat_opens_with_the_role(state):
    chunks = stream(state, {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
                    parse=parse_chat)  # fmt: skip
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_an_aborted_stream_ends_with_an_error_chunk_then_done(state):
    chunks = stream(state, {"prompt": "x", "max_tokens": 100}, abort_after=2)
    assert chunks[-1]["error"]["code"] == 503 and "aborted" in chunks[-1]["error"]["message"]
    assert 2 <= len(chunks) < 100


def test_sse_frames_keep_unicode():
    assert sse({"t": "日本"}) == 'data: {"t":"日本"}\n\n'
