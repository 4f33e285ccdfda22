"""API clients for a gateway: who sends what, when, with which key, and what each one saw.

    >>> from labsupport.gateway.clients import Traffic
    >>> t = Traffic("sk-a", sessions=2, max_tokens=24, think_s=0.2, stop_s=3.0)
    >>> t.describe()
    'sk-a: 2 sessions, max_tokens 24, prompt 22 B, a request 0.2 s after the last one ended'

`run(urls, traffics)` plays every `Traffic` at once against the gateway replicas `urls` (round
robin, as a load balancer would) and returns one `ClientResult` per request, measured here, on
the client side: status, time to the first token, tokens received, `Retry-After`. A session
sends a request, waits for its end, thinks `think_s`, sends the next, from `start_s` until
`stop_s` (seconds from the run's start) or `requests` requests; a 429 is retried after its
`Retry-After` when `obey_retry_after`, else after `think_s`. Streams that run past `stop_s` +
`grace_s` are cut (outcome "cut"). Everything is bounded: sessions, requests, time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass

import httpx

from labsupport import wire
from labsupport.serving.aio import run_sync

MAX_SESSIONS = 400


@wire.record
@dataclass(frozen=True)
class Traffic:
    key: str
    sessions: int = 1
    max_tokens: int = 24
    prompt: str = "Tell me about the sea."
    think_s: float = 0.2
    start_s: float = 0.0
    stop_s: float = 5.0
    requests: int | None = None  # per session; None: until stop_s
    obey_retry_after: bool = True
    leave_after_tokens: int | None = None  # hang up after this many tokens
    label: str = ""

    def describe(self) -> str:
        n = f", {self.requests} request(s) each" if self.requests else ""
        return (
            f"{self.key}: {self.sessions} sessions{n}, max_tokens {self.max_tokens}, prompt "
            f"{len(self.prompt.encode())} B, a request {self.think_s:g} s after the last one ended"
        )


@wire.record
@dataclass
class ClientResult:
    key: str
    label: str
    status: int  # HTTP status (0: no answer)
    outcome: str  # ok | http_NNN | error | timeout | cut | gone
    start_s: float  # seconds from the run's start
    ttft_s: float | None
    e2e_s: float
    tokens: int
    max_tokens: int
    prompt_tokens: int
    retry_after_s: float | None = None


async def _one(client, url, traffic: Traffic, t0: float, cut_at: float) -> ClientResult:
    body = {"prompt": traffic.prompt, "max_tokens": traffic.max_tokens, "stream": True}
    headers = {"Authorization": f"Bearer {traffic.key}"}
    start = time.perf_counter()
    res = ClientResult(traffic.key, traffic.label or traffic.key, 0, "error", start - t0, None,
                       0.0, 0, traffic.max_tokens, len(traffic.prompt.encode()))  # fmt: skip

    async def read() -> None:
        async with client.stream("POST", url, json=body, headers=headers) as r:
            res.status = r.status_code
            if r.status_code != 200:
                res.outcome = f"http_{r.status_code}"
                if "retry-after" in r.headers:
                    res.retry_after_s = float(r.headers["retry-after"])
                await r.aread()
                return
            res.outcome = "truncated"
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    res.outcome = "ok"
                    return
                event = json.loads(data)
                if event.get("error"):
                    res.outcome = "error"
                    return
                if (event.get("choices") or [{}])[0].get("text"):
                    if res.ttft_s is None:
                        res.ttft_s = time.perf_counter() - start
                    res.tokens += 1
                    if traffic.leave_after_tokens and res.tokens >= traffic.leave_after_tokens:
                        res.outcome = "gone"
                        return

    try:
        await asyncio.wait_for(read(), max(0.1, cut_at - time.perf_counter()))
    except asyncio.TimeoutError:
        res.outcome = "cut"
    except httpx.TimeoutException:
        res.outcome = "timeout"
    except (httpx.HTTPError, ValueError):
        res.outcome = "error"
    res.e2e_s = time.perf_counter() - start
    return res


async def _session(client, urls, traffic: Traffic, t0: float, grace_s: float, out: list) -> None:
    await asyncio.sleep(max(0.0, t0 + traffic.start_s - time.perf_counter()))
    sent = 0
    while time.perf_counter() < t0 + traffic.stop_s:
        if traffic.requests is not None and sent >= traffic.requests:
            return
        sent += 1
        res = await _one(client, next(urls), traffic, t0, t0 + traffic.stop_s + grace_s)
        out.append(res)
        pause = traffic.think_s
        if res.status == 429 and traffic.obey_retry_after and res.retry_after_s is not None:
            pause = max(pause, res.retry_after_s)
        await asyncio.sleep(pause)


async def run_async(urls: list[str], traffics: list[Traffic], *, grace_s: float = 10.0,
                    timeout_s: float = 60.0) -> list[ClientResult]:  # fmt: skip
    """Every traffic at once (see the module docstring); results in the order they ended."""
    total = sum(t.sessions for t in traffics)
    if not 0 < total <= MAX_SESSIONS:
        raise ValueError(f"between 1 and {MAX_SESSIONS} sessions in all, got {total}")
    ring = itertools.cycle([u.rstrip("/") + "/v1/completions" for u in urls])
    limits = httpx.Limits(max_connections=total + 8, max_keepalive_connections=total + 8)
    timeout = httpx.Timeout(timeout_s, connect=5.0)
    out: list[ClientResult] = []
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(_session(client, ring, t, t0, grace_s, out))
                 for t in traffics for _ in range(t.sessions)]  # fmt: skip
        end = max(t.stop_s for t in traffics) + grace_s + 5.0
        done, pending = await asyncio.wait(tasks, timeout=end)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return out


def run(urls: list[str], traffics: list[Traffic], **kwargs) -> list[ClientResult]:
    """`run_async` from synchronous code (a notebook cell, a check)."""
    return run_sync(lambda: run_async(urls, traffics, **kwargs), thread_name="srelab-clients")
