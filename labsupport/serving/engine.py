"""A continuous-batching engine over the tiny model and the paged KV cache, in its own thread.

    >>> import asyncio
    >>> from labsupport.serving.engine import Engine, SamplingParams
    >>> engine = Engine.build(device="cpu").start()
    >>> async def main():
    ...     params = SamplingParams(max_tokens=3)
    ...     return [out.token_id async for out in engine.generate([72, 105], params)]
    >>> len(asyncio.run(main()))
    3
    >>> engine.stop()

Each loop iteration is one engine step: commands from other threads are applied (add, abort),
running requests get KV slots for their next token (preempting the newest request, vLLM-style
recompute, when the cache is full), waiting requests are admitted while blocks and seats last,
new requests are prefilled, and every running request decodes one token in a single batched
forward. Tokens go back to asyncio with `loop.call_soon_threadsafe`, as vLLM's engine core is
apart from its API server. `generate()` aborts its request when the consumer goes away
(CancelledError / GeneratorExit), which is the cancellation path `AsyncLLM.generate` has.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import torch

from labsupport.serving.kv_cache import PagedKVCache
from labsupport.serving.model import ModelConfig, TinyLM, Tokenizer
from labsupport.serving.requests import (
    EngineCounters,
    EngineDeadError,
    Heartbeat,
    Request,
    RequestHandle,
    SamplingParams,
    TokenOutput,
)
from labsupport.serving.runner import ModelRunner
from labsupport.serving.scheduler import Scheduler
from labsupport.serving.stops import stop_check

log = logging.getLogger("srelab.engine")

__all__ = ["Engine", "EngineConfig", "EngineDeadError", "SamplingParams", "TokenOutput"]


@dataclass(frozen=True)
class EngineConfig:
    num_blocks: int = 256
    block_size: int = 16
    max_num_seqs: int = 32
    max_prefill_tokens: int = 2048  # prompt tokens prefilled per step, at most
    min_step_s: float = 0.0  # pace steps (a stand-in for GPU time per step)
    seed: int = 0
    history: int = 4096  # finished requests kept for inspection (bounded on purpose)


class _NoFaults:
    def is_active(self, name: str) -> bool:
        return False


class Engine:
    def __init__(
        self,
        model: TinyLM,
        kv: PagedKVCache,
        tokenizer: Tokenizer,
        config: EngineConfig = EngineConfig(),
        *,
        faults=None,
        observer=None,
    ):
        self.model, self.kv, self.tokenizer, self.config = model, kv, tokenizer, config
        self.model_config: ModelConfig = model.cfg
        self.device = kv.k.device
        self.faults = faults or _NoFaults()
        # on_step(tokens), on_first_token(req, s), on_token(req, s), on_finished(req)
        self.observer = observer
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._requests: dict[str, Request] = {}
        self._adds_posted = 0  # requests handed in but not yet seen by the engine thread
        self._adds_applied = 0
        self.counters = EngineCounters()
        self.scheduler = Scheduler(
            kv.allocator,
            self.counters,
            max_num_seqs=config.max_num_seqs,
            max_prefill_tokens=config.max_prefill_tokens,
        )
        self.runner = ModelRunner(model, kv, seed=config.seed)
        self.history: deque[Request] = deque(maxlen=config.history)
        self.last_step_s: float | None = None
        self.loop_count = 0
        self.last_loop_s: float | None = None
        self.dead: BaseException | None = None

    @classmethod
    def build(
        cls,
        model_config: ModelConfig | None = None,
        config: EngineConfig | None = None,
        *,
        device: str = "cpu",
        seed: int = 0,
        model: TinyLM | None = None,
        **kwargs,
    ) -> Engine:
        """A model with seeded random weights and a KV cache on `device`."""
        config = config or EngineConfig()
        if model is None:
            model = TinyLM(model_config or ModelConfig()).init_weights(seed)
        model = model.to(device).eval()
        kv = PagedKVCache(model.cfg, config.num_blocks, config.block_size, device=device)
        return cls(model, kv, Tokenizer(model.cfg.vocab_size), config, **kwargs)

    # -- thread-safe API ---------------------------------------------------------------------
    def add_request(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        request_id: str | None = None,
        sink: Callable[[TokenOutput], None] | None = None,
    ) -> str:
        if self.dead is not None:
            raise EngineDeadError(f"engine is dead: {self.dead!r}")
        total = len(prompt_ids) + params.max_tokens
        if not prompt_ids:
            raise ValueError("prompt is empty")
        if total > self.model_config.max_model_len:
            raise ValueError(
                f"prompt ({len(prompt_ids)}) + max_tokens ({params.max_tokens}) exceeds "
                f"max_model_len {self.model_config.max_model_len}"
            )
        if self.kv.allocator.blocks_for(total) > self.kv.num_blocks:
            raise ValueError(f"{total} tokens can never fit in {self.kv.num_blocks} KV blocks")
        bad = [t for t in prompt_ids if not 0 <= t < self.model_config.vocab_size]
        if bad and not self.faults.is_active("no_input_validation"):
            raise ValueError(f"token id {bad[0]} outside [0, {self.model_config.vocab_size})")
        req = Request(request_id or f"req-{uuid.uuid4().hex[:12]}", list(prompt_ids), params)
        req.sink = sink
        if params.seed is not None:
            req.generator = torch.Generator(device=self.device).manual_seed(params.seed)
        self._adds_posted += 1
        self._post(("add", req))
        return req.request_id

    def abort_request(self, request_id: str) -> None:
        """Stop generating for `request_id` and free its KV blocks (at the next step boundary)."""
        self._post(("abort", request_id))

    def mark_client_gone(self, request_id: str) -> None:
        """Note that nobody reads this request any more; steps spent on it count as wasted."""
        self._post(("gone", request_id))

    def abort_all(self) -> None:
        self._post(("abort_all", None))

    def submit(self, prompt_ids, params: SamplingParams, request_id: str | None = None):
        """Add a request whose outputs arrive on the running asyncio loop; returns its handle."""
        handle = RequestHandle(self, asyncio.get_running_loop())
        handle.request_id = self.add_request(
            prompt_ids, params, request_id=request_id, sink=handle.push
        )
        return handle

    async def generate(
        self, prompt_ids, params: SamplingParams, request_id: str | None = None
    ) -> AsyncIterator[TokenOutput]:
        """Stream the request's outputs; abort it if the consumer stops early."""
        handle = self.submit(prompt_ids, params, request_id)
        try:
            async for out in handle.stream():
                yield out
        finally:  # CancelledError, GeneratorExit, or normal end
            if not handle.finished:
                handle.mark_client_gone()
                handle.abort()

    def heartbeat(self) -> Heartbeat:
        now = time.monotonic()
        return Heartbeat(
            step_count=self.counters.steps,
            last_step_age_s=None if self.last_step_s is None else now - self.last_step_s,
            loop_count=self.loop_count,
            last_loop_age_s=None if self.last_loop_s is None else now - self.last_loop_s,
            num_running=len(self.scheduler.running),
            num_waiting=len(self.scheduler.waiting) + self._adds_posted - self._adds_applied,
            alive=self.is_alive(),
        )

    def is_alive(self) -> bool:
        return self.dead is None and self._thread is not None and self._thread.is_alive()

    def request_info(self, request_id: str) -> Request | None:
        """The live or recently finished request (steps, tokens, steps after the client left)."""
        req = self._requests.get(request_id)
        if req is None:
            req = next((r for r in reversed(self.history) if r.request_id == request_id), None)
        return req

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Engine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="srelab-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def warm_up(self, num_tokens: int = 4) -> None:
        """Run one request through prefill and decode on this thread, then reset the counters."""
        if self._thread is not None:
            raise RuntimeError("warm_up() runs before start()")
        self.add_request([1, 2, 3], SamplingParams(max_tokens=num_tokens))
        while self.step():
            pass
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.counters.__init__()  # the scheduler shares this object
        self.history.clear()
        self.last_step_s = None

    def _post(self, cmd) -> None:
        self._inbox.put(cmd)
        self._wake.set()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self.loop_count += 1
                self.last_loop_s = time.monotonic()
                self._wake.clear()
                if not self.step():
                    self._wake.wait(0.05)
        except BaseException as exc:  # a dead engine must fail its requests, not hang them
            self.dead = exc
            log.exception("engine loop died")
            for req in list(self._requests.values()):
                self._finish(req, "error")

    # -- one step ------------------------------------------------------------------------------
    def step(self) -> bool:
        """One engine iteration; returns False when there was nothing to do."""
        self._apply_commands()
        if not self.scheduler.has_work:
            return False
        if self.faults.is_active("wedged_engine"):
            self._wedge()
            self._apply_commands()
        t0 = time.monotonic()
        prefill, decode = self.scheduler.schedule()
        # vLLM counts a prompt once, when its first token comes (not again after a preemption)
        prompt_tokens = sum(len(r.prompt_ids) for r in prefill if not r.output_ids)
        sampled = self.runner.run(prefill, decode)
        self.counters.steps += 1
        now = time.monotonic()
        self.last_step_s = now
        if self.observer:  # tokens this step computed: vllm:iteration_tokens_total
            self.observer.on_step(prompt_tokens + len(sampled))
        for req, s in zip(prefill + decode, sampled, strict=True):
            self._append(req, s, now)
        spare = self.config.min_step_s - (time.monotonic() - t0)
        if spare > 0:
            self._stop.wait(spare)
        return True

    def _apply_commands(self) -> None:
        while True:
            try:
                kind, arg = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "add":
                self._adds_applied += 1
                arg.arrival_s = time.monotonic()
                self._requests[arg.request_id] = arg
                self.scheduler.add(arg)
            elif kind == "gone":
                if arg in self._requests:
                    self._requests[arg].client_gone = True
            elif kind == "abort":
                if arg in self._requests:
                    self._abort(self._requests[arg])
            elif kind == "abort_all":
                for req in list(self._requests.values()):
                    self._abort(req)

    def _wedge(self) -> None:
        """The step never completes: the thread is alive, no token ever comes out."""
        while self.faults.is_active("wedged_engine") and not self._stop.is_set():
            if self.device.type == "cuda":  # GPU work that keeps the device busy and never ends
                torch.cuda._sleep(50_000_000)
                torch.cuda.synchronize(self.device)
            else:
                self._stop.wait(0.05)

    # -- per-request bookkeeping -----------------------------------------------------------------
    def _append(self, req: Request, s, now: float) -> None:
        token_id = s.token_id
        req.output_ids.append(token_id)
        req.steps += 1
        self.counters.generation_tokens += 1
        if req.client_gone:
            req.steps_after_client_gone += 1
            self.counters.wasted_steps += 1
        if req.first_token_s is None:
            req.first_token_s = now
            if self.observer:
                self.observer.on_first_token(req, now - req.arrival_s)
        elif self.observer:
            self.observer.on_token(req, now - req.last_token_s)
        req.last_token_s = now
        reason, stop_reason, text = stop_check(req, token_id, self.tokenizer)
        out = TokenOutput(
            req.request_id,
            token_id,
            text,
            reason is not None,
            reason,
            len(req.prompt_ids),
            len(req.output_ids),
            s.logprob,
            stop_reason,
            s.prompt_logprobs,
        )
        if reason is not None:
            self._finish(req, reason, final=out)
        else:
            req.emit(out)

    def _abort(self, req: Request) -> None:
        self.counters.aborts += 1
        self._finish(req, "abort")

    def _finish(self, req: Request, reason: str, *, final: TokenOutput | None = None) -> None:
        # Book-keep first, emit last: whoever sees the final output sees the blocks freed.
        self.scheduler.remove(req)
        # BUG (on purpose, when the fault is on): an aborted request keeps its blocks
        if not (reason == "abort" and self.faults.is_active("leak_kv_on_abort")):
            self.kv.allocator.free(req.request_id)
        self._requests.pop(req.request_id, None)
        req.finish_reason = reason
        req.finished_s = time.monotonic()
        self.counters.finished[reason] = self.counters.finished.get(reason, 0) + 1
        self.history.append(req)
        if self.observer:
            self.observer.on_finished(req)
        n_prompt, n_out = len(req.prompt_ids), len(req.output_ids)
        req.emit(final or TokenOutput(req.request_id, None, "", True, reason, n_prompt, n_out))
