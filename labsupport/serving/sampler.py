"""Turning one position's logits into a token, with vLLM's sampling parameters and logprobs.

    >>> import torch
    >>> from labsupport.serving.requests import SamplingParams
    >>> from labsupport.serving.sampler import choose, top_logprobs
    >>> logits = torch.tensor([0.0, 3.0, 1.0, 2.0])
    >>> int(choose(logits, SamplingParams(temperature=0.0), output_ids=[]))
    1
    >>> int(choose(logits, SamplingParams(temperature=0.0, presence_penalty=2.0), [1]))
    3
    >>> logprob, rank, top = top_logprobs(logits, 3, k=1)
    >>> rank, list(top)
    (2, [1])

The order is vLLM V1's (`vllm/v1/sample/sampler.py`): the allowed-token mask, `min_tokens`
(stop tokens masked until then), `logit_bias` (added, clamped to [-100, 100] when parsed),
then the penalties - `repetition_penalty` over prompt and output (a positive logit divided,
a negative one multiplied), `frequency_penalty` times each output token's count,
`presence_penalty` once per output token seen - then greedy (`temperature` 0) or temperature,
`top_k`, `top_p`, `min_p` and a draw (`choose`). Logprobs are of the raw model distribution (vLLM's
default `logprobs_mode`): log-softmax of the logits before any of the above, with the chosen
token's rank (1 = most likely) beside the `k` most likely tokens (`top_logprobs`).
"""

from __future__ import annotations

import torch

from labsupport.serving.requests import SamplingParams


def _processed(logits: torch.Tensor, p: SamplingParams, output_ids, prompt_ids) -> torch.Tensor:
    logits = logits.float()
    if p.allowed_token_ids is not None:
        mask = torch.full_like(logits, float("-inf"))
        mask[list(p.allowed_token_ids)] = 0.0
        logits = logits + mask
    else:
        logits = logits.clone()
    if p.stop_token_ids and len(output_ids) < p.min_tokens:
        logits[list(p.stop_token_ids)] = float("-inf")
    for token_id, bias in p.logit_bias or ():
        logits[token_id] += bias
    dev = logits.device
    if p.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(prompt_ids) | set(output_ids)), dtype=torch.long, device=dev)
        if len(seen):
            values = logits[seen]
            logits[seen] = torch.where(
                values > 0, values / p.repetition_penalty, values * p.repetition_penalty
            )
    if output_ids and (p.frequency_penalty or p.presence_penalty):
        counts = torch.bincount(torch.tensor(output_ids, device=dev), minlength=logits.shape[0])
        counts = counts[: logits.shape[0]].to(logits.dtype)
        logits -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0).to(logits.dtype)
    return logits


def _draw(logits: torch.Tensor, p: SamplingParams, generator) -> torch.Tensor:
    if p.temperature <= 1e-5:  # vLLM's _SAMPLING_EPS: greedy
        return logits.argmax()
    logits = logits / p.temperature
    if 0 < p.top_k < logits.shape[0]:
        kth = torch.topk(logits, p.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if p.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(0) - sorted_p < p.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    if p.min_p > 0.0:
        probs = probs.masked_fill(probs < p.min_p * probs.max(), 0.0)
    return torch.multinomial(probs, 1, generator=generator)[0]


def top_logprobs(raw: torch.Tensor, token_id: int, k: int) -> tuple[float, int, dict[int, float]]:
    """(logprob of token_id, its rank, the k best tokens' logprobs) under the raw logits."""
    logprobs = torch.log_softmax(raw.float(), dim=-1)
    chosen = float(logprobs[token_id])
    rank = int((logprobs > logprobs[token_id]).sum()) + 1
    k = logprobs.shape[0] if k < 0 else min(k, logprobs.shape[0])
    top: dict[int, float] = {}
    if k:
        values, ids = torch.topk(logprobs, k)
        top = dict(zip(ids.tolist(), values.tolist(), strict=True))
    return chosen, rank, top


def choose(
    logits: torch.Tensor,
    params: SamplingParams,
    output_ids: list[int],
    prompt_ids: list[int] = (),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The next token (a 0-d tensor: the caller syncs once per step) after `output_ids`."""
    if params.is_plain:
        logits = logits.float()
    else:
        logits = _processed(logits, params, output_ids, prompt_ids)
    return _draw(logits, params, generator)
