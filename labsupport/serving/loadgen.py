"""A load generator for any OpenAI-compatible server: concurrent streams, latencies, outcomes.

    >>> from labsupport.serving.launcher import serve_subprocess
    >>> from labsupport.serving.loadgen import run_load_sync
    >>> with serve_subprocess() as srv:
    ...     report = run_load_sync(srv.base_url, num_requests=8, concurrency=4, max_tokens=16)
    >>> report.summary["by_status"]
    {'ok': 8}

Each request streams `POST /v1/completions` (or not, with `stream=False`) and records its time
to first token, the gap between tokens, how many tokens came and how it ended:
`ok` (the stream closed with `data: [DONE]`), `client_disconnect` (we hung up on purpose after
`disconnect_after_tokens`), `truncated` (the stream ended early: no [DONE], an error event, or
the connection dropped mid-stream), `http_error` (a non-200 status), `connection_error` (no
connection or dropped before any token), `timeout`. Point it at `vllm serve` as well: the model
name is read from `/v1/models` when not given. Runs are bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import asdict, dataclass, field

import httpx

from labsupport.serving.aio import run_sync

MAX_REQUESTS = 100_000


@dataclass
class RequestResult:
    index: int
    status: str
    http_status: int | None = None
    tokens: int = 0
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    start_s: float = 0.0  # since the run began
    e2e_s: float = 0.0
    error: str | None = None
    text: str = ""


@dataclass
class LoadReport:
    results: list[RequestResult]
    summary: dict
    config: dict

    def as_dict(self) -> dict:
        return {
            "summary": self.summary,
            "config": self.config,
            "results": [asdict(r) for r in self.results],
        }


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _dist_ms(values: list[float]) -> dict:
    ms = [v * 1000.0 for v in values]
    out = {f"p{q}": percentile(ms, q) for q in (50, 90, 95, 99)}
    out.update(n=len(ms), mean=sum(ms) / len(ms) if ms else None, max=max(ms) if ms else None)
    return out


def summarize(results: list[RequestResult], duration_s: float) -> dict:
    by_status: dict[str, int] = {}
    for r in results:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    tokens = sum(r.tokens for r in results)
    return {
        "requests": len(results),
        "by_status": dict(sorted(by_status.items())),
        "ttft_ms": _dist_ms([r.ttft_s for r in results if r.ttft_s is not None]),
        "itl_ms": _dist_ms([x for r in results for x in r.itl_s]),
        "e2e_ms": _dist_ms([r.e2e_s for r in results if r.status == "ok"]),
        "tokens": tokens,
        "duration_s": duration_s,
        "tokens_per_s": tokens / duration_s if duration_s > 0 else 0.0,
    }


async def _model_name(client: httpx.AsyncClient, base_url: str) -> str | None:
    try:
        r = await client.get(f"{base_url}/v1/models")
        return r.json()["data"][0]["id"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError):
        return None


async def _one(client, url, body, index, t_run, disconnect_after) -> RequestResult:
    res = RequestResult(index, "connection_error", start_s=time.perf_counter() - t_run)
    t0 = time.perf_counter()
    last = None
    pieces: list[str] = []
    try:
        if not body["stream"]:
            r = await client.post(url, json=body)
            res.http_status = r.status_code
            if r.status_code != 200:
                res.status, res.error = "http_error", r.text[:300]
            else:
                data = r.json()
                res.text = data["choices"][0]["text"]
                res.tokens = data.get("usage", {}).get("completion_tokens", 0)
                res.ttft_s = time.perf_counter() - t0
                res.status = "ok"
            return res
        async with client.stream("POST", url, json=body) as r:
            res.http_status = r.status_code
            if r.status_code != 200:
                res.status, res.error = (
                    "http_error",
                    (await r.aread()).decode(errors="replace")[:300],
                )
                return res
            res.status = "truncated"  # until [DONE] says otherwise
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    res.status = "ok"
                    break
                event = json.loads(data)
                if "error" in event:
                    res.error = event["error"].get("message")
                    break
                choices = event.get("choices") or []
                if not choices or not choices[0].get("text"):
                    continue
                now = time.perf_counter()
                if last is None:
                    res.ttft_s = now - t0
                else:
                    res.itl_s.append(now - last)
                last = now
                res.tokens += 1
                pieces.append(choices[0]["text"])
                if disconnect_after is not None and res.tokens >= disconnect_after:
                    res.status = "client_disconnect"
                    break  # leaving the block closes the connection mid-stream
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        res.status, res.error = "connection_error", repr(exc)
    except httpx.TimeoutException as exc:
        res.status, res.error = "timeout", repr(exc)
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        res.status = "truncated" if res.tokens else "connection_error"
        res.error = repr(exc)
    finally:
        res.e2e_s = time.perf_counter() - t0
        res.text = "".join(pieces) or res.text
    return res


async def run_load(
    base_url: str,
    *,
    num_requests: int = 16,
    concurrency: int = 4,
    prompt: str = "Hello, my name is",
    max_tokens: int = 32,
    disconnect_after_tokens: int | None = None,
    stream: bool = True,
    temperature: float = 0.0,
    seed: int | None = None,
    model: str | None = None,
    request_timeout_s: float = 60.0,
    total_timeout_s: float = 300.0,
) -> LoadReport:
    """Send `num_requests` completions, `concurrency` at a time; stop all at `total_timeout_s`."""
    if not 1 <= num_requests <= MAX_REQUESTS:
        raise ValueError(f"num_requests must be in [1, {MAX_REQUESTS}], got {num_requests}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    base_url = base_url.rstrip("/")
    config = {k: v for k, v in locals().items() if k not in ("base_url",)}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(request_timeout_s, connect=min(10.0, request_timeout_s))
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        model = model or await _model_name(client, base_url)
        body = {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "stream": stream,
            "temperature": temperature,
        }
        if model:
            body["model"] = model
        if seed is not None:
            body["seed"] = seed
        url = f"{base_url}/v1/completions"
        t_run = time.perf_counter()
        gate = asyncio.Semaphore(concurrency)
        results: list[RequestResult | None] = [None] * num_requests

        async def worker(i: int) -> None:
            async with gate:
                try:
                    results[i] = await asyncio.wait_for(
                        _one(client, url, body, i, t_run, disconnect_after_tokens),
                        request_timeout_s,
                    )
                except asyncio.TimeoutError:
                    results[i] = RequestResult(i, "timeout", error=f"over {request_timeout_s} s")

        tasks = [asyncio.ensure_future(worker(i)) for i in range(num_requests)]
        _done, pending = await asyncio.wait(tasks, timeout=total_timeout_s)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        duration_s = time.perf_counter() - t_run
    final = [
        r or RequestResult(i, "timeout", error="run time limit") for i, r in enumerate(results)
    ]
    return LoadReport(final, summarize(final, duration_s), config)


def run_load_sync(base_url: str, **kwargs) -> LoadReport:
    """`run_load` from synchronous code, also inside Jupyter (whose loop is already running)."""
    return run_sync(lambda: run_load(base_url, **kwargs), thread_name="srelab-loadgen")
