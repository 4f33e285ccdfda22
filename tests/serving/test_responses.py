from labsupport.serving import responses as r
from labsupport.serving.model import Tokenizer
from labsupport.serving.requests import TokenLogprob

TOK = Tokenizer()
# sampled token 66 ("B") is not among the top 2 (65 "A", 67 "C")
LP = TokenLogprob(66, -3.0, 5, {65: -0.5, 67: float("-inf")})


def test_completion_logprobs_list_the_sampled_token_then_the_top_k_plus_one():
    out = r.completion_logprobs([72, 66], [None, LP], 2, TOK, offset=10)
    assert out["tokens"] == ["H", "B"] and out["text_offset"] == [10, 11]
    assert out["token_logprobs"] == [None, -3.0] and out["top_logprobs"][0] is None
    assert out["top_logprobs"][1] == {"B": -3.0, "A": -0.5, "C": -9999.0}
    assert list(r.completion_logprobs([66], [LP], 0, TOK)["top_logprobs"][0]) == ["B"]
    named = r.completion_logprobs([66], [LP], 1, TOK, as_ids=True)
    assert named["tokens"] == ["token_id:66"] and "token_id:65" in named["top_logprobs"][0]


def test_chat_logprobs_and_prompt_logprobs():
    (entry,) = r.chat_logprobs([66], [LP], 2, TOK)["content"]
    assert entry["token"] == "B" and entry["bytes"] == [66] and len(entry["top_logprobs"]) == 2
    prompt = r.prompt_logprobs((None, LP), TOK)
    assert prompt[0] is None
    assert prompt[1]["66"] == {"logprob": -3.0, "rank": 5, "decoded_token": "B"}
    assert prompt[1]["65"]["rank"] == 1 and prompt[1]["67"]["logprob"] == -9999.0
    assert r.prompt_logprobs(None, TOK) is None


def test_bodies_have_every_vllm_field():
    chunk = r.completion_chunk("c", "m", 3, "x", finish_reason="length")
    assert set(chunk) == {"id", "object", "created", "model", "choices"}
    assert set(chunk["choices"][0]) == {"index", "text", "logprobs", "finish_reason",
                                        "stop_reason", "prompt_token_ids", "token_ids"}  # fmt: skip
    with_usage = r.completion_chunk("c", "m", 0, "x", usage=r.usage(1, 1))
    assert with_usage["usage"]["total_tokens"] == 2
    body = r.completion_body("c", "m", [r.completion_choice(0, "x")], r.usage(2, 3))
    assert {"service_tier", "system_fingerprint", "kv_transfer_params"} <= set(body)
    assert "prompt_logprobs" in body["choices"][0] and "stop_reason" in body["choices"][0]
    last = r.usage_chunk("c", "m", r.usage(2, 3))
    assert last["choices"] == [] and "prompt_tokens_details" not in last["usage"]
    assert r.usage(2, 3, cached=True)["prompt_tokens_details"] == {"cached_tokens": 0}
    chat = r.chat_body("c", "m", [r.chat_choice(0, "hi", finish_reason="stop")], r.usage(1, 1))
    assert chat["object"] == "chat.completion" and chat["choices"][0]["message"]["role"] == (
        "assistant"
    )
    start = r.chat_chunk("c", "m", 0, {"role": "assistant", "content": ""})
    assert "stop_reason" not in start["choices"][0]
    end = r.chat_chunk("c", "m", 0, {"content": "x"}, finish_reason="stop", stop_reason="\n")
    assert end["choices"][0]["stop_reason"] == "\n"
