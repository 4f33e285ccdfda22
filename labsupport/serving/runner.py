"""Runs the model for one engine step: prefills, one batched decode, sampling.

    >>> from labsupport.serving.engine import Engine
    >>> from labsupport.serving.requests import Request, SamplingParams
    >>> engine = Engine.build(device="cpu")
    >>> req = Request("a", [1, 2, 3], SamplingParams(max_tokens=4))
    >>> _ = engine.kv.allocator.allocate("a", 3)
    >>> [type(s.token_id) for s in engine.runner.run(prefill=[req], decode=[])]
    [<class 'int'>]

Prefill runs each new request's whole context (prompt, plus output so far after a preemption)
and writes its keys and values into its cache slots. Decode runs one token for every running
request in a single forward, each attending to its own context through its block table: the
slots are gathered from the cache as a paged-attention kernel reads them. Sampling (`sampler`)
yields one tensor per request and the step syncs with the device once; logprobs, when a request
asks for them, are read after that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from labsupport.serving.kv_cache import PagedKVCache
from labsupport.serving.model import TinyLM
from labsupport.serving.requests import Request, TokenLogprob
from labsupport.serving.sampler import choose, top_logprobs


@dataclass(frozen=True)
class Sampled:
    token_id: int
    logprob: TokenLogprob | None = None
    prompt_logprobs: tuple | None = None  # (None, TokenLogprob, ...) on a first prefill


class ModelRunner:
    def __init__(self, model: TinyLM, kv: PagedKVCache, seed: int = 0):
        self.model, self.kv = model, kv
        self.device = kv.k.device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def run(self, prefill: list[Request], decode: list[Request]) -> list[Sampled]:
        """The next token of each request, in the order prefill + decode."""
        with torch.inference_mode():
            rows, prompt_rows = [], {}
            for r in prefill:
                logits = self._prefill(r)
                if logits.dim() == 2:  # every position: prompt logprobs wanted
                    prompt_rows[r.request_id] = logits
                    logits = logits[-1]
                rows.append(logits)
            if decode:
                rows += list(self._decode(decode))
            reqs = prefill + decode
            picks = [self._choose(r, row) for r, row in zip(reqs, rows, strict=True)]
            ids = torch.stack(picks).tolist() if picks else []  # one device sync per step
            out = []
            for r, row, token_id in zip(reqs, rows, ids, strict=True):
                logprob = None
                if r.params.logprobs is not None:
                    lp, rank, top = top_logprobs(row, token_id, r.params.logprobs)
                    logprob = TokenLogprob(token_id, lp, rank, top)
                prompt = prompt_rows.get(r.request_id)
                out.append(Sampled(token_id, logprob, None if prompt is None else
                                   self._prompt_logprobs(r, prompt)))  # fmt: skip
            return out

    def _prompt_logprobs(self, req: Request, logits: torch.Tensor) -> tuple:
        ids, k = req.prompt_ids, req.params.prompt_logprobs
        entries: list = [None]
        for pos in range(1, len(ids)):
            lp, rank, top = top_logprobs(logits[pos - 1], ids[pos], k)
            entries.append(TokenLogprob(ids[pos], lp, rank, top))
        return tuple(entries)

    def _prefill(self, req: Request) -> torch.Tensor:
        ids = req.all_token_ids
        slots = self.kv.allocator.slots(req.request_id, 0, len(ids))
        dev = self.device
        # prompt logprobs are computed on the first prefill only, not after a preemption
        every = req.params.prompt_logprobs is not None and not req.output_ids
        return self.model.prefill(
            torch.tensor(ids, device=dev),
            torch.tensor(slots, device=dev),
            self.kv.k,
            self.kv.v,
            all_positions=every,
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

    def _choose(self, req: Request, logits: torch.Tensor) -> torch.Tensor:
        generator = req.generator or self.generator
        return choose(logits, req.params, req.output_ids, req.prompt_ids, generator)
