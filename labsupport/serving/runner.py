"""Runs the model for one engine step: prefills, one batched decode, sampling.

    >>> from labsupport.serving.engine import Engine
    >>> from labsupport.serving.requests import Request, SamplingParams
    >>> engine = Engine.build(device="cpu")
    >>> req = Request("a", [1, 2, 3], SamplingParams(max_tokens=4))
    >>> _ = engine.kv.allocator.allocate("a", 3)
    >>> len(engine.runner.run(prefill=[req], decode=[]))
    1

Prefill runs each new request's whole context (prompt, plus output so far after a preemption)
and writes its keys and values into its cache slots. Decode runs one token for every running
request in a single forward, each attending to its own context through its block table: the
slots are gathered from the cache as a paged-attention kernel reads them.
"""

from __future__ import annotations

import torch

from labsupport.serving.kv_cache import PagedKVCache
from labsupport.serving.model import TinyLM
from labsupport.serving.requests import Request


class ModelRunner:
    def __init__(self, model: TinyLM, kv: PagedKVCache, seed: int = 0):
        self.model, self.kv = model, kv
        self.device = kv.k.device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def run(self, prefill: list[Request], decode: list[Request]) -> list[int]:
        """The next token of each request, in the order prefill + decode."""
        with torch.inference_mode():
            picks = [self._sample(r, self._prefill(r)) for r in prefill]
            if decode:
                logits = self._decode(decode)
                picks += [self._sample(r, row) for r, row in zip(decode, logits, strict=True)]
            return torch.stack(picks).tolist() if picks else []  # one device sync per step

    def _prefill(self, req: Request) -> torch.Tensor:
        ids = req.all_token_ids
        slots = self.kv.allocator.slots(req.request_id, 0, len(ids))
        dev = self.device
        return self.model.prefill(
            torch.tensor(ids, device=dev), torch.tensor(slots, device=dev), self.kv.k, self.kv.v
        )

    def _decode(self, reqs: list[Request]) -> torch.Tensor:
        alloc, dev = self.kv.allocator, self.device
        positions = [r.num_tokens - 1 for r in reqs]
        longest = max(positions) + 1
        context = [
            alloc.slots(r.request_id, 0, p + 1) for r, p in zip(reqs, positions, strict=True)
        ]
        padded = [c + [0] * (longest - len(c)) for c in context]
        mask = [[True] * len(c) + [False] * (longest - len(c)) for c in context]
        return self.model.decode(
            torch.tensor([r.output_ids[-1] for r in reqs], device=dev),
            torch.tensor(positions, device=dev),
            torch.tensor([c[-1] for c in context], device=dev),
            torch.tensor(padded, device=dev),
            torch.tensor(mask, device=dev),
            self.kv.k,
            self.kv.v,
        )

    def _sample(self, req: Request, logits: torch.Tensor) -> torch.Tensor:
        p = req.params
        if p.temperature <= 0:
            return logits.argmax()
        probs = torch.softmax(logits.float() / p.temperature, dim=-1)
        if p.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            keep = sorted_p.cumsum(0) - sorted_p < p.top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return torch.multinomial(probs, 1, generator=req.generator or self.generator)[0]
