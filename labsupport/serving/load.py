"""Steady traffic for a model server: N clients, one request after another, until stopped.

    >>> from labsupport.serving.launcher import serve_subprocess
    >>> from labsupport.serving.load import SteadyLoad
    >>> with serve_subprocess() as srv:
    ...     with SteadyLoad(srv.base_url, concurrency=2, max_tokens=4) as load:
    ...         load.wait_for_requests(4, timeout_s=30)
    True
    >>> load.counts()["ok"] >= 4
    True

Closed loop: each client sends its next completion (`stream=False`) only when the previous one
has ended, so at most `concurrency` requests are ever in the server - a load of 64 clients
against a server that runs 32 at a time keeps about 32 waiting. A failed connection (the pod
is restarting) is retried after `retry_after_s`. The clients run on an asyncio loop in a thread
of this process; `stop()` cancels them (the server sees the disconnects) and joins the thread;
`stop(drain_s=...)` first stops sending and lets the requests in flight finish for that long.
Every request ends as an `Outcome`: ok, http_<status>, timeout, error, or cancelled (still in
flight when the load stopped).

`gate`: an admission gate in front of the server (`try_enter() -> bool`, `leave()`), e.g. a
gateway's concurrency limit: a request it refuses ends at once as `http_429`, without being sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Outcome:
    start_s: float  # time.monotonic()
    end_s: float
    status: str  # "ok", "http_503", "http_429", "timeout", "error", "cancelled"

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s


class SteadyLoad:
    def __init__(
        self,
        base_url: str,
        *,
        concurrency: int,
        max_tokens: int = 64,
        prompt: str = "The quick brown fox",
        request_timeout_s: float = 30.0,
        retry_after_s: float = 0.2,
        name: str = "load",
        gate=None,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.concurrency, self.max_tokens, self.prompt = concurrency, max_tokens, prompt
        self.request_timeout_s, self.retry_after_s, self.name = (
            request_timeout_s,
            retry_after_s,
            name,
        )
        self.gate = gate
        self.outcomes: list[Outcome] = []
        self.started_s: float | None = None
        self.stopped_s: float | None = None
        self._stop: asyncio.Event | None = None
        self._draining: asyncio.Event | None = None
        self.in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def __enter__(self) -> SteadyLoad:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> SteadyLoad:
        if self._thread is not None:
            raise RuntimeError("this load was already started")
        self._thread = threading.Thread(target=self._run, name=f"srelab-{self.name}", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self, timeout_s: float = 10.0, drain_s: float = 0.0) -> None:
        """Cancel every client (their requests are disconnected) and join the thread.

        drain_s > 0: first stop sending new requests and wait up to drain_s seconds for the
        requests in flight to finish.
        """
        if self._thread is None:
            return
        if drain_s > 0 and self._loop is not None and self._draining is not None:
            try:
                self._loop.call_soon_threadsafe(self._draining.set)
            except RuntimeError:
                pass
            deadline = time.monotonic() + drain_s
            while self.in_flight and time.monotonic() < deadline and self.running:
                time.sleep(0.02)
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop already ended
                pass
        self._thread.join(timeout_s)
        if self.stopped_s is None:
            self.stopped_s = time.monotonic()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def counts(self, since_s: float | None = None, until_s: float | None = None) -> dict:
        """Outcomes of requests that started in [since_s, until_s) (monotonic), by status."""
        lo = float("-inf") if since_s is None else since_s
        hi = float("inf") if until_s is None else until_s
        c = Counter(o.status for o in list(self.outcomes) if lo <= o.start_s < hi)
        return {"ok": c.get("ok", 0), **{k: v for k, v in sorted(c.items()) if k != "ok"}}

    def wait_for_requests(self, n: int, timeout_s: float) -> bool:
        """Block until `n` requests have ended (any outcome); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while len(self.outcomes) < n:
            if time.monotonic() > deadline or not self.running:
                return len(self.outcomes) >= n
            time.sleep(0.02)
        return True

    # -- the clients -----------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._draining = asyncio.Event()
        self.started_s = time.monotonic()
        self._ready.set()
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=0)
        timeout = httpx.Timeout(self.request_timeout_s, connect=min(5.0, self.request_timeout_s))
        async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
            tasks = [asyncio.ensure_future(self._client(client)) for _ in range(self.concurrency)]
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.stopped_s = time.monotonic()

    async def _client(self, client: httpx.AsyncClient) -> None:
        body = {"prompt": self.prompt, "max_tokens": self.max_tokens, "stream": False}
        url = f"{self.base_url}/v1/completions"
        while not self._draining.is_set():
            t0 = time.monotonic()
            if self.gate is not None and not self.gate.try_enter():
                self.outcomes.append(Outcome(t0, t0, "http_429"))  # shed: never sent
                await asyncio.sleep(self.retry_after_s)  # as told by Retry-After
                continue
            self.in_flight += 1
            try:
                r = await client.post(url, json=body)
                status = "ok" if r.status_code == 200 else f"http_{r.status_code}"
            except httpx.TimeoutException:
                status = "timeout"
            except httpx.HTTPError:
                status = "error"
            except asyncio.CancelledError:
                self.outcomes.append(Outcome(t0, time.monotonic(), "cancelled"))
                raise
            finally:
                self.in_flight -= 1
                if self.gate is not None:
                    self.gate.leave()
            self.outcomes.append(Outcome(t0, time.monotonic(), status))
            if status != "ok":
                await asyncio.sleep(self.retry_after_s)
