"""Lab 290's server parts a fix may change: the scheduler, the request log, the handle.

    >>> from labsupport.scenarios.p99_spikes.parts import Scheduler
    >>> s = Scheduler()
    >>> s.max_num_batched_tokens, s.long_prefill_token_threshold
    (16384, 0)
    >>> s.long_prefill_token_threshold = 512

`after_warmup(server)` receives a `ServerHandle`: its scheduler (vLLM's two knobs), its request
log, and the coroutine function that the request-log task awaits to flush it.
"""

from __future__ import annotations

import inspect
import os
import tempfile
import threading
import time
from collections import deque

import numpy as np

DEFAULT_BUDGET = 16384  # max_num_batched_tokens as shipped
MAX_NUM_SEQS = 256


class Scheduler:
    """Which tokens each step computes, with vLLM's two knobs.

    max_num_batched_tokens: tokens one step may compute (decodes and prompt tokens together).
    long_prefill_token_threshold: the most prompt tokens one request may compute in a step
    (0: no limit). Running requests are scheduled first, in admission order (one token for a
    decode, the rest of its prompt for a request still in prefill), then waiting requests in
    arrival order, while the budget lasts - as vLLM's V1 scheduler does.
    """

    def __init__(self, max_num_batched_tokens: int = DEFAULT_BUDGET, threshold: int = 0):
        self._budget = DEFAULT_BUDGET
        self._threshold = 0
        self.max_num_batched_tokens = max_num_batched_tokens
        self.long_prefill_token_threshold = threshold

    @property
    def max_num_batched_tokens(self) -> int:
        return self._budget

    @max_num_batched_tokens.setter
    def max_num_batched_tokens(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 20:
            raise ValueError(f"max_num_batched_tokens must be an int in [1, 2**20], not {value!r}")
        self._budget = value

    @property
    def long_prefill_token_threshold(self) -> int:
        return self._threshold

    @long_prefill_token_threshold.setter
    def long_prefill_token_threshold(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 20:
            raise ValueError(
                f"long_prefill_token_threshold must be an int in [0, 2**20], not {value!r}"
            )
        self._threshold = value

    def plan(self, running: list, waiting: deque) -> list[tuple]:
        """(request, tokens to compute this step); admitted waiting requests join `running`."""
        budget, cap = self._budget, self._threshold
        out = []
        for req in running:
            if budget <= 0:
                break
            need = req.prompt_tokens - req.prefilled if req.prefilled < req.prompt_tokens else 1
            if 0 < cap < need:
                need = cap
            need = min(need, budget)
            out.append((req, need))
            budget -= need
        while waiting and budget > 0 and len(running) < MAX_NUM_SEQS:
            req = waiting.popleft()
            need = req.prompt_tokens
            if 0 < cap < need:
                need = cap
            need = min(need, budget)
            running.append(req)
            out.append((req, need))
            budget -= need
        return out


class RequestLog:
    """The request log: one line per finished request, appended to a file and fsynced.

    write() buffers a line; flush() writes the buffer and fsyncs it. The file lives on the
    variant's volume: one flush takes `volume_ms` in all (the stand-in for a network volume:
    a real write and fsync to a local file, then the rest of the volume's latency). Thread-safe:
    writes may go on while a flush runs.
    """

    def __init__(self, volume_ms: float, n_measured: int):
        fd, self.path = tempfile.mkstemp(prefix=f"srelab-{os.getpid()}-requests-", suffix=".log")
        self._file = os.fdopen(fd, "w")
        self.volume_ms = volume_ms
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[tuple[int, str]] = []
        self.written_s = np.full(n_measured, np.nan)
        self.durable_s = np.full(n_measured, np.nan)
        self.lines = 0
        self.flushes = 0
        self._clock, self._origin = time.perf_counter, 0.0

    def set_origin(self, origin: float) -> None:
        """Times from here on are relative to `origin` (the measured window's start)."""
        self._origin = origin

    def write(self, index: int, line: str) -> None:
        """Buffer one line (index: the measured request's index, -1 for warm-up requests)."""
        with self._lock:
            self._pending.append((index, line))
            if index >= 0:
                self.written_s[index] = self._clock() - self._origin

    def flush(self) -> None:
        """Write and fsync what is buffered (takes the volume's time)."""
        with self._flush_lock:
            start = time.perf_counter()
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            self._file.write("".join(line for _, line in batch))
            self._file.flush()
            os.fsync(self._file.fileno())
            rest = self.volume_ms / 1e3 - (time.perf_counter() - start)
            if rest > 0:
                time.sleep(rest)  # the rest of the network volume's write + fsync latency
            now = self._clock() - self._origin
            with self._lock:
                for index, _ in batch:
                    if index >= 0:
                        self.durable_s[index] = now
                self.lines += len(batch)
                self.flushes += 1

    def close(self) -> None:
        self.flush()
        self._file.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


async def flush_on_loop(log: RequestLog) -> None:
    """How the request-log task flushes, as shipped."""
    log.flush()


class ServerHandle:
    """What `after_warmup(server)` gets: the parts of the server a fix may change.

    scheduler: the `Scheduler` (its two knobs).
    request_log: the `RequestLog` (write/flush/close; thread-safe).
    flush_request_log: the coroutine function the request-log task awaits every
    `flush_every_s` with the log, `async def f(log) -> None`; `flush_on_loop` as shipped.
    """

    def __init__(self, scheduler: Scheduler, request_log: RequestLog, flush_every_s: float):
        self._scheduler, self._log = scheduler, request_log
        self._every = flush_every_s
        self._flush = flush_on_loop

    @property
    def flush_every_s(self) -> float:
        return self._every

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler

    @property
    def request_log(self) -> RequestLog:
        return self._log

    @property
    def flush_request_log(self):
        return self._flush

    @flush_request_log.setter
    def flush_request_log(self, fn) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                "flush_request_log must be a coroutine function: `async def f(log): ...`"
            )
        self._flush = fn
