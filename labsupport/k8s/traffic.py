"""Steady streaming completions through a Service; each request's outcome and pod recorded.

    >>> from labsupport.k8s.traffic import StreamingLoad
    >>> load = StreamingLoad("http://127.0.0.1:1", clients=2, max_requests=2)
    >>> with load:                      # nothing listens on port 1: every request fails
    ...     load.wait_for_requests(2, timeout_s=10)
    True
    >>> {r.status for r in load.records}
    {'connection_error'}

`clients` closed-loop clients each send a streamed `POST /v1/completions`, wait for it to end,
and send the next, until `stop()`, `max_requests` or `max_run_s`. Every request opens its own
connection (`Connection: close`), so the Service's per-connection balancing picks a pod for
each one, and the client knows the local port it came from: `attach_backends(balancer)` joins
that port with the balancer's `connection_log` to name the pod that got the request.

Outcomes, as `serving.loadgen` names them: `ok` (the stream ended with `data: [DONE]`),
`truncated` (a 200 stream cut short: an error event, a reset, an end without [DONE]),
`http_error` (a non-200 answer, e.g. 503 from a server that stopped accepting),
`connection_error` (refused or reset before any answer), `timeout`.
Times are `time.time()`, the clock of the supervisor's events. The client is plain asyncio with
h11 (the HTTP/1.1 state machine under httpx), on its own thread, so a notebook can use it.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import h11

from labsupport import wire

STATUSES = ("ok", "truncated", "http_error", "connection_error", "timeout")


@wire.record
@dataclass
class RequestRecord:
    """One request: when it started and ended, how it ended, which pod had it."""

    index: int
    client: int
    start_s: float  # time.time() when the connection was opened
    end_s: float = 0.0
    status: str = "connection_error"
    http_status: int | None = None
    tokens: int = 0
    max_tokens: int = 0
    backend: str | None = None  # the pod, from the balancer's connection log
    error: str = ""
    client_port: int | None = None

    @property
    def failed(self) -> bool:
        return self.status != "ok"


class StreamingLoad:
    def __init__(
        self,
        base_url: str,
        *,
        clients: int = 6,
        min_tokens: int = 8,
        max_tokens: int = 64,
        seed: int = 0,
        model: str = "srelab-tiny",
        max_requests: int = 5000,
        max_run_s: float = 120.0,
        request_timeout_s: float = 30.0,
    ):
        url = urlparse(base_url)
        self.host, self.port = url.hostname, url.port
        self.clients, self.seed, self.model = clients, seed, model
        self.min_tokens, self.max_tokens = min_tokens, max_tokens
        self.max_requests, self.max_run_s = max_requests, max_run_s
        self.request_timeout_s = request_timeout_s
        self.records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Future | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> StreamingLoad:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> StreamingLoad:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._main = loop.create_task(self._run())
            started.set()
            try:
                loop.run_until_complete(self._main)
            except asyncio.CancelledError:
                pass
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="srelab-streaming-load", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self, drain_timeout_s: float = 15.0) -> None:
        """No new requests; wait up to drain_timeout_s for those in flight, then cut them."""
        self._stopping.set()
        if self._thread is None:
            return
        self._thread.join(drain_timeout_s)
        if self._thread.is_alive() and self._loop is not None:
            self._loop.call_soon_threadsafe(self._main.cancel)
            self._thread.join(10)

    def wait_for_requests(self, n: int, timeout_s: float) -> bool:
        """True once n requests have ended."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if sum(r.end_s > 0 for r in self.records) >= n:
                    return True
            time.sleep(0.02)
        return False

    # ---- load -----------------------------------------------------------------------------
    async def _run(self) -> None:
        deadline = time.monotonic() + self.max_run_s
        tasks = [asyncio.ensure_future(self._client(i, deadline)) for i in range(self.clients)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, client: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + client)
        while not self._stopping.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.records) >= self.max_requests:
                    return
                rec = RequestRecord(len(self.records), client, time.time())
                rec.max_tokens = rng.randint(self.min_tokens, self.max_tokens)
                self.records.append(rec)
            try:
                await asyncio.wait_for(self._one(rec), self.request_timeout_s)
            except asyncio.TimeoutError:
                rec.status, rec.error = "timeout", f"over {self.request_timeout_s:g} s"
            except asyncio.CancelledError:
                rec.status, rec.error = "timeout", "cut when the load stopped"
                rec.end_s = time.time()
                raise
            rec.end_s = time.time()
            if rec.status != "ok":
                await asyncio.sleep(0.02)  # a client backs off a little after a failure

    async def _one(self, rec: RequestRecord) -> None:
        body = json.dumps(
            {
                "model": self.model,
                "prompt": f"Request {rec.index}: tell me a story.",
                "max_tokens": rec.max_tokens,
                "stream": True,
                "temperature": 0.0,
            }
        ).encode()
        # Bind first: the local port is known even when the connection is reset at once.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        rec.client_port = sock.getsockname()[1]
        rec.start_s = time.time()
        try:
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
            reader, writer = await asyncio.open_connection(sock=sock)
        except OSError as exc:
            sock.close()
            rec.status, rec.error = "connection_error", repr(exc)
            return
        conn = h11.Connection(h11.CLIENT)
        headers = [
            ("Host", f"{self.host}:{self.port}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        try:
            writer.write(
                conn.send(h11.Request(method="POST", target="/v1/completions", headers=headers))
                + conn.send(h11.Data(data=body))
                + conn.send(h11.EndOfMessage())
            )
            await writer.drain()
            await self._read(reader, conn, rec)
        except (OSError, h11.RemoteProtocolError) as exc:
            rec.error = rec.error or repr(exc)
            rec.status = "connection_error" if rec.http_status is None else "truncated"
        finally:
            writer.transport.abort()

    async def _read(self, reader: asyncio.StreamReader, conn: h11.Connection, rec) -> None:
        buffer, body = "", b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
                continue
            if isinstance(event, h11.Response):
                rec.http_status = event.status_code
                rec.status = "truncated" if event.status_code == 200 else "http_error"
            elif isinstance(event, h11.Data):
                if rec.http_status != 200:
                    body += event.data
                    continue
                buffer += bytes(event.data).decode(errors="replace")
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    if self._sse_line(line, rec):
                        return
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if rec.http_status != 200:
                    rec.error = body.decode(errors="replace")[:300]
                elif not rec.error:
                    rec.error = "the stream ended without [DONE]"
                return

    @staticmethod
    def _sse_line(line: str, rec: RequestRecord) -> bool:
        """Read one SSE line; True when the stream is over ([DONE] or an error event)."""
        if not line.startswith("data:"):
            return False
        data = line[5:].strip()
        if data == "[DONE]":
            rec.status = "ok"
            return True
        event = json.loads(data)
        if "error" in event:
            rec.error = str(event["error"].get("message"))
            return True  # status stays truncated: the server ended the stream early
        if (event.get("choices") or [{}])[0].get("text"):
            rec.tokens += 1
        return False


def attach_backends(records: list[RequestRecord], balancer, tolerance_s: float = 5.0) -> None:
    """Name each request's pod from the balancer's connection log (matched by client port)."""
    by_port: dict[int, list] = {}
    for c in list(balancer.connection_log):
        if c.client and len(c.client) >= 2:
            by_port.setdefault(c.client[1], []).append(c)
    for rec in records:
        candidates = by_port.get(rec.client_port) or []
        near = [c for c in candidates if abs(c.opened_at - rec.start_s) <= tolerance_s]
        if near:
            rec.backend = min(near, key=lambda c: abs(c.opened_at - rec.start_s)).backend


def by_status(records: list[RequestRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[r.status] = out.get(r.status, 0) + 1
    return dict(sorted(out.items()))
