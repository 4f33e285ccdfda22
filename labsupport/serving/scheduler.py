"""Which requests run in the next engine step: continuous batching over the paged KV cache.

    >>> from labsupport.serving.kv_cache import BlockAllocator
    >>> from labsupport.serving.requests import EngineCounters, Request, SamplingParams
    >>> sched = Scheduler(BlockAllocator(8, 4), EngineCounters(), max_num_seqs=4)
    >>> sched.add(Request("a", [1, 2, 3], SamplingParams(max_tokens=2)))
    >>> prefill, decode = sched.schedule()
    >>> [r.request_id for r in prefill], decode
    (['a'], [])

Each step, as in vLLM's scheduler: running requests come first, each gets a KV slot for its next
token; when the pool is empty the newest running request is preempted (its blocks freed, back to
the head of the queue, recomputed later). Then waiting requests are admitted first come, first
served, while there are seats (`max_num_seqs`), blocks for their whole context and prefill
budget (`max_prefill_tokens`); the head of the queue waits for blocks and everyone waits behind it.
"""

from __future__ import annotations

import time
from collections import deque

from labsupport.serving.kv_cache import BlockAllocator
from labsupport.serving.requests import EngineCounters, Request


class Scheduler:
    def __init__(
        self,
        allocator: BlockAllocator,
        counters: EngineCounters,
        *,
        max_num_seqs: int = 32,
        max_prefill_tokens: int = 2048,
    ):
        self.allocator = allocator
        self.counters = counters
        self.max_num_seqs = max_num_seqs
        self.max_prefill_tokens = max_prefill_tokens
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []

    @property
    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    def add(self, req: Request) -> None:
        self.waiting.append(req)

    def remove(self, req: Request) -> None:
        """Take a finished or aborted request out of the queues (its blocks are not touched)."""
        if req in self.running:
            self.running.remove(req)
        if req in self.waiting:
            self.waiting.remove(req)

    def schedule(self) -> tuple[list[Request], list[Request]]:
        """(requests to prefill, requests to decode) for this step, with their KV slots reserved."""
        decode = self._reserve_decode_slots()
        return self._admit(), decode

    def _reserve_decode_slots(self) -> list[Request]:
        alloc = self.allocator
        pending = [r for r in self.running if r.output_ids]
        scheduled: list[Request] = []
        while pending:
            req = pending.pop(0)
            while not alloc.can_allocate(req.request_id, req.num_tokens):
                victim = pending.pop() if pending else req
                self._preempt(victim)
                if victim is req:
                    break
            else:
                alloc.allocate(req.request_id, req.num_tokens)
                scheduled.append(req)
        return scheduled

    def _preempt(self, req: Request) -> None:
        # vLLM's recompute preemption: drop the KV, prefill prompt + output again later
        self.allocator.free(req.request_id)
        self.running.remove(req)
        self.waiting.appendleft(req)
        req.num_preemptions += 1
        self.counters.preemptions += 1

    def _admit(self) -> list[Request]:
        admitted: list[Request] = []
        budget = self.max_prefill_tokens
        while self.waiting and len(self.running) < self.max_num_seqs:
            req = self.waiting[0]
            n = req.num_tokens
            if (admitted and n > budget) or not self.allocator.can_allocate(req.request_id, n):
                break
            self.waiting.popleft()
            self.allocator.allocate(req.request_id, n)
            budget -= n
            if req.scheduled_s is None:
                req.scheduled_s = time.monotonic()
                self.counters.prompt_tokens += len(req.prompt_ids)
            else:
                self.counters.recomputed_tokens += n
            self.running.append(req)
            admitted.append(req)
        return admitted
