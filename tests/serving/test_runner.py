import torch

from labsupport.serving.engine import Engine
from labsupport.serving.model import ModelConfig
from labsupport.serving.requests import Request, SamplingParams


def _setup(*reqs):
    engine = Engine.build(ModelConfig(max_model_len=128))
    for r in reqs:
        engine.kv.allocator.allocate(r.request_id, r.num_tokens)
    return engine.runner


def test_prefill_then_decode_gives_one_token_per_request():
    a = Request("a", [1, 2, 3], SamplingParams())
    b = Request("b", [4, 5], SamplingParams())
    runner = _setup(a, b)
    first = [s.token_id for s in runner.run(prefill=[a, b], decode=[])]
    assert len(first) == 2 and all(0 <= t < 512 for t in first)
    a.output_ids.append(first[0])
    b.output_ids.append(first[1])
    for r in (a, b):
        runner.kv.allocator.allocate(r.request_id, r.num_tokens)
    assert len(runner.run(prefill=[], decode=[a, b])) == 2
    assert runner.run(prefill=[], decode=[]) == []


def test_sampling_rules():
    runner = _setup()
    logits = torch.tensor([0.0, 5.0, 4.9, -3.0])
    greedy = Request("g", [1], SamplingParams(temperature=0.0))
    assert int(runner._choose(greedy, logits)) == 1
    narrow = Request("n", [1], SamplingParams(temperature=1.0, top_p=0.01))
    assert {int(runner._choose(narrow, logits)) for _ in range(20)} == {1}  # only the top token
    picks = []
    for _ in range(2):
        seeded = Request("s", [1], SamplingParams(temperature=2.0, seed=11))
        seeded.generator = torch.Generator().manual_seed(11)
        picks.append([int(runner._choose(seeded, logits)) for _ in range(10)])
    assert picks[0] == picks[1] and len(set(picks[0])) > 1


def test_logprobs_and_prompt_logprobs_come_with_the_token():
    a = Request("a", [1, 2, 3], SamplingParams(logprobs=2, prompt_logprobs=1))
    runner = _setup(a)
    (s,) = runner.run(prefill=[a], decode=[])
    assert s.logprob.token_id == s.token_id and s.logprob.rank == 1  # greedy: the top token
    assert len(s.logprob.top) == 2 and s.logprob.logprob == max(s.logprob.top.values())
    assert s.prompt_logprobs[0] is None and [e.token_id for e in s.prompt_logprobs[1:]] == [2, 3]
    assert all(len(e.top) == 1 and e.logprob <= 0 for e in s.prompt_logprobs[1:])
    a.output_ids.append(s.token_id)
    runner.kv.allocator.allocate("a", a.num_tokens)
    (again,) = runner.run(prefill=[], decode=[a])
    assert again.prompt_logprobs is None and again.logprob is not None
