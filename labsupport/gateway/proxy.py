"""One attempt at an upstream: send, wait for the first token within a deadline, then relay.

    >>> from labsupport.gateway.proxy import EventCounter
    >>> c = EventCounter()
    >>> c.feed(b'data: {"choices":[{"text":"Hi"}]}\\n\\ndata: {"choices":[{"text":""}]}\\n\\n')
    1
    >>> c.feed(b'data: [DONE]\\n\\n'), c.tokens, c.done
    (0, 1, True)

`attempt()` opens a streaming `POST` to the upstream with httpx and reads until the first event
that carries a token (or ends the stream) arrives, all within `first_token_s`: a 5xx or a
connection failure is outcome `error`, no first token in time is `timeout` (the upstream
connection is closed, so the upstream sees its client go), anything else is `ok` with the bytes
read so far kept for the client. `relay()` then yields those bytes and the rest of the stream,
counting tokens as it goes; closing it closes the upstream response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

import httpx


class EventCounter:
    """Follows a server-sent event stream of completions: tokens, [DONE], an error event."""

    def __init__(self):
        self._buf = bytearray()
        self.tokens = 0
        self.done = False
        self.error: str | None = None

    def feed(self, data: bytes) -> int:
        """Count the token events completed by `data`; returns how many were new."""
        self._buf += data
        new = 0
        while (end := self._buf.find(b"\n\n")) >= 0:
            event, self._buf = bytes(self._buf[:end]), self._buf[end + 2 :]
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    self.done = True
                    continue
                try:
                    obj = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(obj, dict) and obj.get("error"):
                    self.error = str((obj["error"] or {}).get("message", obj["error"]))[:300]
                    continue
                choices = obj.get("choices") if isinstance(obj, dict) else None
                if choices and isinstance(choices[0], dict):
                    first = choices[0]
                    if first.get("text") or (first.get("delta") or {}).get("content"):
                        new += 1
        self.tokens += new
        return new


@dataclass
class Attempt:
    upstream: str
    outcome: str  # ok | error | timeout
    status: int  # the upstream's HTTP status (0: no answer)
    ttft_s: float | None = None
    body: bytes = b""  # an error's body, for the client
    response: httpx.Response | None = None  # ok: still open, to relay
    chunks: list[bytes] = field(default_factory=list)  # ok: read before the first token
    counter: EventCounter = field(default_factory=EventCounter)
    stream: object = None  # the response's byte iterator, already started
    error: str = ""

    @property
    def ttft_ms(self) -> float | None:
        return None if self.ttft_s is None else round(self.ttft_s * 1000, 2)


async def _first_token(response: httpx.Response, attempt: Attempt) -> None:
    attempt.stream = response.aiter_raw()
    async for chunk in attempt.stream:
        attempt.chunks.append(chunk)
        if attempt.counter.feed(chunk) or attempt.counter.done or attempt.counter.error:
            return


async def attempt(client: httpx.AsyncClient, name: str, url: str, body: dict,
                  first_token_s: float) -> Attempt:  # fmt: skip
    """Try `url` once (see the module docstring); the caller relays or closes the response."""
    t0 = time.perf_counter()
    result = Attempt(name, "error", 0)
    held: list[httpx.Response] = []

    async def first() -> None:
        response = await client.send(client.build_request("POST", url, json=body), stream=True)
        held.append(response)
        result.status = response.status_code
        if response.status_code != 200:
            result.body = await response.aread()
            result.outcome = "error" if response.status_code >= 500 else "refused"
            return
        await _first_token(response, result)
        if result.counter.error and not result.counter.tokens:
            result.outcome, result.error = "error", result.counter.error
            return
        result.ttft_s = time.perf_counter() - t0
        result.outcome, result.response = "ok", response

    try:
        await asyncio.wait_for(first(), first_token_s)
    except asyncio.TimeoutError:
        result.outcome, result.error = "timeout", f"no first token within {first_token_s:g} s"
    except httpx.HTTPError as exc:
        result.outcome, result.error = "error", f"{type(exc).__name__}: {exc}"[:300]
    finally:
        if result.response is None:
            for response in held:  # not relayed: the upstream sees its client go
                with contextlib.suppress(Exception):
                    await response.aclose()
    return result


async def relay(result: Attempt):
    """The bytes of an `ok` attempt, then the rest of its stream (closing it at the end)."""
    try:
        for chunk in result.chunks:
            yield chunk
        result.chunks = []
        async for chunk in result.stream:
            result.counter.feed(chunk)
            yield chunk
    finally:
        if result.response is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(result.response.aclose())
