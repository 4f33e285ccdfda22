import asyncio

import pytest

from labsupport import bpe
from labsupport.scenarios import cpu_pegged_gpu_idle as lab
from labsupport.scenarios.cpu_pegged_gpu_idle import frontend, traffic


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_long_text_travels_where_the_variant_says(seed):
    v = lab.variant(seed)
    reqs = traffic.schedule(v, 4.0)
    big = next(r for r in reqs if r.role == "big")
    text = traffic.long_text(v, v.big_chars)
    assert (big.stop == (text,)) == (v.path == "stop")
    assert (text in big.prompt) == (v.path != "stop")
    assert not any(c.isspace() for c in text)
    assert traffic.schedule(v, 4.0)[5].prompt == reqs[5].prompt  # same seed, same traffic


def test_variants_differ_and_sizes_follow_the_tokenizer():
    vs = [lab.variant(s) for s in range(6)]
    assert len({(v.path, v.kind) for v in vs}) >= 5
    cap = vs[0].max_model_len * bpe.load().longest_token_chars
    assert vs[0].big_chars > 2 * cap > cap > vs[0].fit_chars


@pytest.mark.parametrize("path", ["prompt", "stop", "usage"])
def test_each_path_tokenizes_through_the_handle_and_refuses_what_is_too_long(path):
    tok = bpe.load()
    front = frontend.Frontend(tok, max_model_len=32, path=path)
    seen = []

    async def spy(text):
        seen.append(text)
        return tok.encode(text)

    front.server.tokenize = spy
    ok = frontend.Request(0, "chat", 0.0, prompt="Hello there", stop=("STOP",), max_tokens=8)
    assert asyncio.run(front.handle_completion(ok)) and ok.prompt_ids == tok.encode("Hello there")
    assert "STOP" in seen and seen.count("Hello there") == 1
    long = frontend.Request(1, "big", 0.0, prompt="x " * 200, stop=(), max_tokens=8)
    assert not asyncio.run(front.handle_completion(long)) and long.status == 400
