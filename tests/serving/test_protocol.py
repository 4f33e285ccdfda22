import json

import pytest

from labsupport.serving.model import Tokenizer
from labsupport.serving.protocol import ApiError, parse_completion

TOK = Tokenizer(512)


def parse(body, max_model_len=64, **kw):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_completion(raw, TOK, "tiny", max_model_len, **kw)


def test_defaults_and_fields():
    job = parse({"prompt": "Hi"})
    assert [p.ids for p in job.prompts] == [[72, 105]] and job.prompts[0].text == "Hi"
    assert not job.stream and not job.include_usage and job.n == 1 and job.kind == "completion"
    assert (job.params.max_tokens, job.params.temperature, job.params.seed) == (16, 1.0, None)
    assert job.request_id.startswith("cmpl-")
    job = parse(
        {
            "model": "tiny",
            "prompt": ["Hi"],
            "max_tokens": 5,
            "temperature": 0,
            "top_p": 0.5,
            "seed": 9,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "stop": None,
            "user": "u",
            "n": 1,
            "logprobs": None,
            "echo": False,
            "request_id": "abc",
        }
    )
    assert job.params.max_tokens == 5 and job.params.seed == 9 and job.include_usage
    assert job.continuous_usage and job.request_id == "cmpl-abc"
    assert job.params.top_p == 1.0  # greedy: vLLM resets top_p/top_k/min_p
    assert parse({"prompt": [1, 2, 511]}).prompts[0].ids == [1, 2, 511]
    assert parse({"prompt": "x", "max_tokens": None}).params.max_tokens == 63  # the rest


def test_prompt_lists_and_samples():
    job = parse({"prompt": ["a", "bc"], "n": 3, "seed": 5, "temperature": 1})
    assert [p.ids for p in job.prompts] == [[97], [98, 99]] and job.n == 3
    assert [job.child_params(j).seed for j in range(3)] == [5, 6, 7]  # vLLM's parallel seeds
    job = parse({"prompt": [[1, 2], [3]]})
    assert [p.ids for p in job.prompts] == [[1, 2], [3]]
    assert job.prompts[0].text == TOK.decode([1, 2])


def test_truncation_and_echo_logprobs():
    ids = list(range(8))
    right = parse({"prompt": ids, "truncate_prompt_tokens": 4, "truncation_side": "right"})
    left = parse({"prompt": ids, "truncate_prompt_tokens": 4})  # vLLM's default: keep the end
    assert right.prompts[0].ids == ids[:4] and left.prompts[0].ids == ids[-4:]
    job = parse({"prompt": "ab", "echo": True, "logprobs": 2})
    assert job.echo and job.params.prompt_logprobs == 2 and job.params.logprobs == 2


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        (b"not json", 400, None, "not valid JSON"),
        (b"[1, 2]", 400, None, "JSON object"),
        ({"prompt": "x", "foo": 1, "bar": 2}, 400, "foo", "Unknown field(s): foo, bar"),
        (
            {"prompt": "x", "stream": True, "stream_options": {"includ_usage": True}},
            400,
            "stream_options.includ_usage",
            "Unknown field(s): stream_options.includ_usage",
        ),
        ({}, 400, "prompt", "Either prompt or prompt_embeds"),
        ({"prompt": ""}, 400, "prompt", "Either prompt or prompt_embeds"),
        ({"prompt": []}, 400, "prompt", "Either prompt or prompt_embeds"),
        ({"prompt": ["a", ""]}, 400, "prompt", "cannot be empty"),
        ({"prompt": {"a": 1}}, 400, "prompt", "must be a string"),
        ({"prompt": [1, 512]}, 400, "prompt", "Token id 512 is out of vocabulary"),
        ({"prompt": [1, -1]}, 400, "prompt", "out of vocabulary"),
        ({"prompt": "x" * 64}, 400, "input_tokens", "maximum context length is 64"),
        ({"prompt": "x", "max_tokens": -1}, 400, "max_tokens", "at least 1"),
        ({"prompt": "x", "max_tokens": 0}, 400, "max_tokens", "at least 1"),
        ({"prompt": "x", "max_tokens": 10**9}, 400, "input_tokens", "maximum context length"),
        ({"prompt": "x", "max_tokens": "5"}, 400, "max_tokens", "valid integer"),
        ({"prompt": "x", "max_tokens": True}, 400, "max_tokens", "valid integer"),
        ({"prompt": "x", "temperature": 3}, 400, "temperature", "[0, 2]"),
        ({"prompt": "x", "temperature": -1}, 400, "temperature", "non-negative"),
        ({"prompt": "x", "top_p": 0}, 400, "top_p", "(0, 1]"),
        ({"prompt": "x", "n": 0}, 400, "n", "at least 1"),
        ({"prompt": "x", "n": 2, "temperature": 0}, 400, "n", "greedy"),
        ({"prompt": "x", "stop": [""]}, 400, "stop", "empty string"),
        ({"prompt": "x", "presence_penalty": 3}, 400, "presence_penalty", "[-2, 2]"),
        ({"prompt": "x", "frequency_penalty": -3}, 400, "frequency_penalty", "[-2, 2]"),
        ({"prompt": "x", "repetition_penalty": 0}, 400, "repetition_penalty", "greater than"),
        ({"prompt": "x", "logit_bias": {"600": 1}}, 400, "logit_bias", "out-of-vocab"),
        ({"prompt": "x", "logit_bias": {"a": 1}}, 400, "logit_bias", "integer token IDs"),
        ({"prompt": "x", "logprobs": 21}, 400, "logprobs", "max allowed: 20"),
        ({"prompt": "x", "logprobs": -1}, 400, "logprobs", "positive"),
        ({"prompt": "x", "prompt_logprobs": -1}, 400, "prompt_logprobs", "max allowed"),
        ({"prompt": "x", "prompt_logprobs": -2}, 400, "prompt_logprobs", "positive"),
        (
            {"prompt": "x", "prompt_logprobs": 1, "stream": True},
            400,
            "prompt_logprobs",
            "not available when `stream=True`",
        ),
        ({"prompt": "x", "stream": "yes"}, 400, "stream", "boolean"),
        (
            {"prompt": "x", "stream_options": {"include_usage": True}},
            400,
            "stream_options",
            "only be defined when `stream=True`",
        ),
        ({"prompt": "x", "model": "gpt-4"}, 404, "model", "does not exist"),
        ({"prompt": "x", "suffix": "!"}, 400, "suffix", "not currently supported"),
        ({"prompt": "x", "use_beam_search": True}, 400, "use_beam_search", "not supported"),
        ({"prompt": "x", "structured_outputs": {"regex": "a"}}, 400, None, "not supported"),
        ({"prompt": "x", "logits_processors": ["m.f"]}, 400, None, "logits processors"),
        ({"prompt": "x", "allowed_token_ids": [999]}, 400, None, "out-of-vocab"),
        ({"prompt": "x", "min_tokens": 20}, 400, "min_tokens", "less than or equal"),
    ],
)
def test_bad_requests_get_vllms_4xx(body, status, param, words):
    with pytest.raises(ApiError) as info:
        parse(body)
    err = info.value
    assert err.status == status and words in err.message
    if param is not None:
        assert err.param == param
    body = err.body()["error"]
    assert body["code"] == status and body["message"] == err.message and body["type"]


def test_null_or_empty_stream_options_pass_without_stream():
    assert not parse({"prompt": "x", "stream_options": None}).include_usage
    assert not parse({"prompt": "x", "stream_options": {}}).include_usage


def test_unvalidated_token_ids_get_through_on_purpose():
    assert parse({"prompt": [1, 600]}, check_token_ids=False).prompts[0].ids == [1, 600]


def test_openai_sampling_parameters_real_clients_send_by_default():
    job = parse({"prompt": "x", "frequency_penalty": 0, "presence_penalty": 0, "logit_bias": {},
                 "top_p": 1, "n": 1, "stream": False, "logprobs": None, "echo": False})  # fmt: skip
    assert job.params.is_plain
    job = parse({"prompt": "x", "frequency_penalty": 0.5, "logit_bias": {"7": 250, "8": -1}})
    assert job.params.frequency_penalty == 0.5
    assert job.params.logit_bias == ((7, 100.0), (8, -1.0))  # clamped as OpenAI and vLLM do
