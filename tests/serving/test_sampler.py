import torch

from labsupport.serving.requests import SamplingParams
from labsupport.serving.sampler import choose, top_logprobs

LOGITS = torch.tensor([0.0, 3.0, 2.5, 2.0, -1.0])


def pick(output_ids=(), prompt_ids=(), **params):
    params.setdefault("temperature", 0.0)
    return int(choose(LOGITS, SamplingParams(**params), list(output_ids), list(prompt_ids)))


def test_greedy_takes_the_top_token_and_plain_params_skip_processing():
    assert pick() == 1 and SamplingParams().is_plain
    assert not SamplingParams(presence_penalty=0.1).is_plain


def test_penalties_follow_vllm():
    assert pick([1], presence_penalty=1.0) == 2  # 3 - 1 < 2.5
    assert pick([1], frequency_penalty=0.3) == 1  # once: 2.7 > 2.5
    assert pick([1, 1, 1], frequency_penalty=0.3) == 2  # three times: 2.1 < 2.5
    assert pick(prompt_ids=[1], repetition_penalty=2.0) == 2  # 3 / 2 < 2.5, prompt counts too
    assert pick([4], repetition_penalty=2.0, logit_bias=((4, 4.0),)) == 1  # -1*2+4 = 2 < 3
    assert pick([], presence_penalty=-2.0) == 1


def test_bias_allowed_tokens_and_min_tokens():
    assert pick(logit_bias=((0, 100.0),)) == 0
    assert pick(allowed_token_ids=(3, 4)) == 3
    assert pick(stop_token_ids=(1,), min_tokens=2) == 2  # a stop token is masked until then
    assert pick([5, 5], stop_token_ids=(1,), min_tokens=2) == 1


def test_sampling_filters():
    def draws(**params):
        gen = torch.Generator().manual_seed(0)
        p = SamplingParams(temperature=1.0, **params)
        return {int(choose(LOGITS, p, [], [], gen)) for _ in range(200)}

    assert draws(top_k=1) == {1}
    assert draws(top_k=2) == {1, 2}
    assert draws(min_p=0.5) <= {1, 2, 3} and 1 in draws(min_p=0.5)
    assert draws(top_p=0.01) == {1}
    assert len(draws()) >= 4


def test_logprobs_of_the_raw_distribution():
    logprob, rank, top = top_logprobs(LOGITS, 3, k=2)
    expected = torch.log_softmax(LOGITS, -1)
    assert abs(logprob - float(expected[3])) < 1e-6 and rank == 3
    assert list(top) == [1, 2] and abs(top[1] - float(expected[1])) < 1e-6
    assert len(top_logprobs(LOGITS, 0, k=-1)[2]) == 5  # -1: the whole vocabulary
