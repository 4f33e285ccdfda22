"""The gateway's HTTP API (FastAPI): keys, limits, routing, relaying, an access log.

    >>> from labsupport.gateway.app import create_app
    >>> from labsupport.gateway.config import GatewayConfig
    >>> app = create_app(GatewayConfig({"engine": "http://127.0.0.1:8000"}))
    >>> sorted(r.path for r in app.routes if not r.path.startswith(("/docs", "/openapi", "/redoc")))
    ['/gateway/log', '/health', '/v1/completions']

`POST /v1/completions` (OpenAI's body, streamed or not) goes through, in order:
1. the key: `Authorization: Bearer KEY` must be one of the config's keys (401 otherwise);
2. the limits: the admit script decides (`limits`); refused is a 429 with `Retry-After`
   (whole seconds) and `retry-after-ms`, and an OpenAI-style error body;
3. the route: the policy picks an upstream per attempt (`routing`); an attempt that fails
   before its first token (5xx, connection, deadline) may be followed by another;
4. the relay: the upstream's events go to the client as they come; when the client hangs up,
   the upstream connection is closed too;
5. the end, however it came: the settle script gets what the request really cost (prompt
   tokens + tokens relayed), and the access log gets an `AccessEntry`.
`GET /gateway/log` returns the log (`?since=N`: entries from the N-th on). Prompt tokens are
counted as the lab's engine counts them (UTF-8 bytes); `max_tokens` defaults to 16, OpenAI's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from labsupport.gateway import proxy, routing
from labsupport.gateway.config import AccessEntry, GatewayConfig
from labsupport.gateway.limits import Admission, AsyncScriptLimiter

log = logging.getLogger("srelab.gateway")
LOG_ENTRIES = 200_000
DEFAULT_MAX_TOKENS = 16


def _error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


class GatewayState:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.log: deque[AccessEntry] = deque(maxlen=LOG_ENTRIES)
        self.logged = 0
        self.client: httpx.AsyncClient | None = None
        self.limiter: AsyncScriptLimiter | None = None
        self.router = routing.build(config.router, list(config.upstreams), **config.extra)
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
        timeout = httpx.Timeout(self.config.request_timeout_s, connect=5.0)
        self.client = httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)
        if self.config.limited:
            import redis.asyncio as aioredis

            store = aioredis.from_url(self.config.redis_url, decode_responses=True)
            cfg = self.config
            self.limiter = AsyncScriptLimiter(store, cfg.admit_lua, cfg.settle_lua)

    async def stop(self) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=5.0)
        if self.client is not None:
            await self.client.aclose()
        if self.limiter is not None:
            await self.limiter.client.aclose()

    def append(self, entry: AccessEntry) -> None:
        self.log.append(entry)
        self.logged += 1

    def later(self, coro) -> None:
        """Run `coro` in its own task: a cancelled request still settles and logs."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def _sizes(body: dict) -> tuple[int, int]:
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        prompt = "".join(p for p in prompt if isinstance(p, str))
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        max_tokens = DEFAULT_MAX_TOKENS
    return len(str(prompt).encode("utf-8")), max_tokens


async def _route(state: GatewayState, body: dict) -> tuple[proxy.Attempt | None, list]:
    """Attempts as the policy directs; (the ok attempt or the last failure, [(name, outcome,
    ttft_ms)])."""
    cfg, tried, attempts, last = state.config, [], [], None
    for _ in range(routing.MAX_ATTEMPTS):
        name = state.router.choose(time.monotonic(), tuple(tried))
        if name is None:
            break
        if name not in cfg.upstreams:
            raise ValueError(f"the routing policy chose {name!r}, not one of {list(cfg.upstreams)}")
        url = cfg.upstreams[name].rstrip("/") + "/v1/completions"
        last = await proxy.attempt(state.client, name, url, body, cfg.first_token_s)
        outcome = "ok" if last.outcome == "refused" else last.outcome
        state.router.record(name, time.monotonic(), outcome, last.ttft_s)
        attempts.append((name, last.outcome, last.ttft_ms))
        if last.outcome in ("ok", "refused"):
            break
        tried.append(name)
    return last, attempts


def _failure(last: proxy.Attempt | None) -> Response:
    if last is None:
        return _error(503, "no upstream is available for this request", "service_unavailable")
    if last.outcome == "timeout":
        return _error(504, f"upstream {last.upstream}: {last.error}", "gateway_timeout")
    if last.status:
        kind = {"content-type": "application/json"}
        return Response(last.body, status_code=last.status, headers=kind)
    return _error(502, f"upstream {last.upstream}: {last.error}", "bad_gateway")


def create_app(config: GatewayConfig) -> FastAPI:
    state = GatewayState(config)
    app = FastAPI(title=config.name, docs_url=None, redoc_url=None)
    app.state.gateway = state  # the runner starts and stops it (`cli`)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/gateway/log")
    async def access_log(since: int = 0):
        first = state.logged - len(state.log)
        entries = list(state.log)[max(0, since - first) :]
        return {"logged": state.logged, "entries": [e.as_dict() for e in entries]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        start = time.time()
        try:
            body = await request.json()
            assert isinstance(body, dict)
        except Exception:
            return _error(400, "the body must be a JSON object", "invalid_request_error")
        key = _bearer(request)
        prompt_tokens, max_tokens = _sizes(body)
        entry = AccessEntry(uuid.uuid4().hex[:12], key, 0, start, start, None, prompt_tokens,
                            max_tokens, 0, "", [])  # fmt: skip
        limits = None
        if config.authenticates:
            limits = config.keys.get(key)
            if limits is None:
                entry.status, entry.reason, entry.end_s = 401, "unknown key", time.time()
                state.append(entry)
                return _error(401, "Incorrect API key provided.", "invalid_api_key")
        cost = prompt_tokens + max_tokens
        if state.limiter is not None and limits is not None:
            now_ms = int(time.time() * 1000)
            decision: Admission = await state.limiter.admit(key, limits, cost=cost, now_ms=now_ms)
            if not decision.admitted:
                entry.status, entry.end_s = 429, time.time()
                entry.retry_after_s, entry.reason = decision.retry_after_s, decision.reason
                if decision.error:
                    entry.status, entry.reason = 500, decision.error
                state.append(entry)
                if decision.error:
                    return _error(500, "rate limiting failed", "server_error")
                headers = {"Retry-After": str(decision.retry_after_s),
                           "retry-after-ms": str(max(0, decision.retry_after_ms))}  # fmt: skip
                return _error(429, f"Rate limit reached ({decision.reason}).",
                              "rate_limit_exceeded", headers)  # fmt: skip

        async def finish(status: int, tokens: int, gone: bool = False) -> None:
            entry.status, entry.completion_tokens, entry.client_gone = status, tokens, gone
            entry.end_s = time.time()
            if state.limiter is not None and limits is not None:
                err = await state.limiter.settle(key, limits, reserved=cost,
                                                 used=prompt_tokens + tokens,
                                                 now_ms=int(time.time() * 1000))  # fmt: skip
                if err:
                    entry.reason = err
            state.append(entry)

        try:
            last, entry.attempts = await _route(state, body)
        except Exception as exc:  # the policy failed: this request fails, the gateway goes on
            log.warning("routing failed: %s", exc)
            entry.reason = f"routing failed: {type(exc).__name__}: {exc}"[:300]
            state.later(finish(500, 0))
            return _error(500, "routing failed", "server_error")
        if last is None or last.outcome not in ("ok", "refused"):
            response = _failure(last)
            entry.upstream = last.upstream if last is not None else ""
            entry.reason = entry.reason or (last.error if last is not None else "gave up")
            state.later(finish(response.status_code, 0))
            return response
        entry.upstream, entry.ttft_ms = last.upstream, last.ttft_ms
        if last.outcome == "refused":
            state.later(finish(last.status, 0))
            return _failure(last)

        async def stream():
            completed = False
            try:
                async for chunk in proxy.relay(last):
                    yield chunk
                completed = True
            finally:
                state.later(finish(200, last.counter.tokens, gone=not completed))

        media = last.response.headers.get("content-type", "text/event-stream")
        if not media.startswith("text/event-stream"):  # a plain JSON answer: read it whole
            data = b"".join([c async for c in proxy.relay(last)])
            with contextlib.suppress(Exception):
                import json

                last.counter.tokens = json.loads(data)["usage"]["completion_tokens"]
            state.later(finish(200, last.counter.tokens))
            return Response(data, media_type=media)
        return StreamingResponse(stream(), media_type="text/event-stream")

    return app
