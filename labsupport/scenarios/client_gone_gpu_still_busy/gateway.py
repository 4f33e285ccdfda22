"""The gateway in front of the chat-backend: a loopback proxy with an access log (lab 286).

    >>> import httpx
    >>> from labsupport.scenarios.client_gone_gpu_still_busy.gateway import gateway
    >>> from labsupport.serving.launcher import serve_subprocess
    >>> with serve_subprocess() as srv, gateway(srv.base_url) as gw:
    ...     body = {"prompt": "Hi", "max_tokens": 3, "stream": True}
    ...     with httpx.stream("POST", gw.url + "/v1/completions", json=body, trust_env=False) as r:
    ...         _ = r.read()
    >>> gw.log
    [{'request': 'POST /v1/completions', 'status': 200, 'upstream_status': 200, \
'tokens_from_upstream': 3, 'tokens_to_client': 3, 'request_time_s': ...}]

Bytes go both ways unchanged (HTTP/1.1, keep-alive, chunked server-sent events). Like an AI
gateway it meters the completion tokens of each streamed response: read from the server
(`tokens_from_upstream`) and written to the client (`tokens_to_client`), one access-log entry
per response, as nginx logs `$upstream_bytes_received` next to `$bytes_sent`. A response
whose client closed its connection before the last byte was written is logged with status 499
(nginx's "client closed request").

`on_client_close` says what the gateway does with the server's connection when its client's
goes away: "close" closes it too (nginx's default), "read" keeps reading the response to its
end and drops it (nginx with `proxy_ignore_client_abort on`, or a gateway that buffers whole
responses). It runs on its own event loop in a thread; leaving the block closes every socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

CHUNK_BYTES = 65536
ON_CLIENT_CLOSE = ("close", "read")


def _is_token_event(payload: bytes) -> bool:
    """A server-sent event that carries completion text (a completion or a chat chunk)."""
    if payload.strip() == b"[DONE]":
        return False
    try:
        event = json.loads(payload)
    except ValueError:
        return False
    choices = event.get("choices") if isinstance(event, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return False
    first = choices[0]
    return bool(first.get("text") or (first.get("delta") or {}).get("content"))


class ResponseMeter:
    """Follows the HTTP/1.1 responses on one upstream connection and counts token events.

    `feed(data)` returns, for the bytes just read, [(entry, tokens, ended)]: the log entry of
    each response they belong to, the token events they completed, whether the response ended.
    """

    def __init__(self, new_entry):
        self._new_entry = new_entry
        self._buf = bytearray()
        self._state = "head"  # head | size | data | data_end | trailer | length | until_close
        self._left = 0
        self._events = bytearray()
        self._sse = False
        self._entry: dict | None = None

    def feed(self, data: bytes) -> list[tuple[dict, int, bool]]:
        self._buf += data
        out: list[list] = []
        while True:
            progressed = self._step(out)
            if not progressed:
                break
        return [(e, n, ended) for e, n, ended in out]

    def _touch(self, out: list, tokens: int = 0, ended: bool = False) -> None:
        if out and out[-1][0] is self._entry:
            out[-1][1] += tokens
            out[-1][2] = out[-1][2] or ended
        else:
            out.append([self._entry, tokens, ended])

    def _body(self, out: list, data: bytes) -> None:
        if not self._sse:
            self._touch(out)
            return
        self._events += data
        tokens, done = 0, False
        while (end := self._events.find(b"\n\n")) >= 0:
            event, self._events = bytes(self._events[:end]), self._events[end + 2 :]
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                if line[5:].strip() == b"[DONE]":
                    done = True  # the client has the whole answer once this is through
                elif _is_token_event(line[5:]):
                    tokens += 1
        self._entry["tokens_from_upstream"] += tokens
        self._touch(out, tokens, ended=done)

    def _end(self, out: list) -> None:
        self._touch(out, ended=True)
        self._entry, self._state, self._events = None, "head", bytearray()

    def _step(self, out: list) -> bool:
        buf = self._buf
        if self._state == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            parts = head[0].split(" ")
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip().lower()
            self._entry = self._new_entry(status)
            self._sse = headers.get("content-type", "").startswith("text/event-stream")
            self._touch(out)
            if "chunked" in headers.get("transfer-encoding", ""):
                self._state = "size"
            elif "content-length" in headers:
                self._left = int(headers["content-length"] or 0)
                self._state = "length"
                if self._left == 0:
                    self._end(out)
            else:
                self._state = "until_close"
            return True
        if self._state == "size":
            end = buf.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(buf[:end]).split(b";")[0].strip() or b"0", 16)
            del buf[: end + 2]
            self._left, self._state = size, ("data" if size else "trailer")
            return True
        if self._state in ("data", "length", "until_close"):
            if not buf:
                return False
            take = len(buf) if self._state == "until_close" else min(self._left, len(buf))
            chunk = bytes(buf[:take])
            del buf[:take]
            self._left -= take
            self._body(out, chunk)
            if self._state == "data" and self._left == 0:
                self._state = "data_end"
            elif self._state == "length" and self._left == 0:
                self._end(out)
            return True
        if self._state == "data_end":
            if len(buf) < 2:
                return False
            del buf[:2]
            self._state = "size"
            return True
        if self._state == "trailer":
            end = buf.find(b"\r\n")
            if end < 0:
                return False
            del buf[: end + 2]
            if end == 0:  # the empty line after the last chunk (and any trailer fields)
                self._end(out)
            return True
        return False


class RequestLines:
    """Follows the HTTP/1.1 requests on one client connection: their request lines, in order."""

    def __init__(self):
        self._buf = bytearray()
        self._skip = 0
        self.lines: list[str] = []

    def feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            if self._skip:
                take = min(self._skip, len(self._buf))
                del self._buf[:take]
                self._skip -= take
                if self._skip:
                    return
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
            del self._buf[: end + 4]
            method, _, rest = head[0].partition(" ")
            self.lines.append(f"{method} {rest.rpartition(' ')[0] or rest}")
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length" and value.strip().isdigit():
                    self._skip = int(value.strip())


class Gateway:
    """One gateway: its URL, its access log and how many clients are connected right now."""

    def __init__(self, upstream_host: str, upstream_port: int, on_client_close: str):
        if on_client_close not in ON_CLIENT_CLOSE:
            raise ValueError(f"on_client_close must be one of {ON_CLIENT_CLOSE}")
        self.upstream = (upstream_host, upstream_port)
        self.on_client_close = on_client_close
        self.url = ""
        self.log: list[dict] = []  # one entry per response, in the order responses began
        self.clients_open = 0  # client connections open now
        self.tasks: set[asyncio.Task] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    def _entry(self, upstream_status: int, request: str) -> dict:
        entry = {
            "request": request,
            "status": upstream_status,
            "upstream_status": upstream_status,
            "tokens_from_upstream": 0,
            "tokens_to_client": 0,
            "request_time_s": 0.0,
            "_started": time.perf_counter(),
        }
        self.log.append(entry)
        return entry

    @staticmethod
    def _finish(entry: dict, status: int) -> None:
        if "_started" in entry:
            entry["status"] = status
            entry["request_time_s"] = round(time.perf_counter() - entry.pop("_started"), 4)

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        self.tasks.add(asyncio.current_task())
        self.clients_open += 1
        try:
            await self._pipe(client_r, client_w)
        except asyncio.CancelledError:
            pass  # the gateway is stopping (asyncio logs an error for a cancelled handler task)
        finally:
            self.tasks.discard(asyncio.current_task())

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        self.writers.add(client_w)
        state = {"client_open": True}
        entries: list[dict] = []

        def client_gone() -> None:
            if state["client_open"]:
                state["client_open"] = False
                self.clients_open -= 1

        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            self.writers.discard(client_w)
            client_gone()
            return
        self.writers.add(up_w)
        requests = RequestLines()

        def new_entry(status: int) -> dict:
            i = len(entries)
            entries.append(
                self._entry(status, requests.lines[i] if i < len(requests.lines) else "")
            )
            return entries[-1]

        meter = ResponseMeter(new_entry)

        async def client_to_upstream() -> None:
            with contextlib.suppress(OSError):
                while data := await client_r.read(CHUNK_BYTES):
                    requests.feed(data)
                    up_w.write(data)
                    await up_w.drain()
            client_gone()
            if self.on_client_close == "close":
                up_w.close()  # the server sees its client go, as the gateway's client went

        async def upstream_to_client() -> None:
            with contextlib.suppress(OSError):
                while data := await up_r.read(CHUNK_BYTES):
                    metered = meter.feed(data)
                    sent = state["client_open"]
                    if sent:
                        try:
                            client_w.write(data)
                            await client_w.drain()
                        except OSError:
                            client_gone()
                            sent = False
                    for entry, tokens, ended in metered:
                        if sent:
                            entry["tokens_to_client"] += tokens
                        if ended:
                            self._finish(entry, entry["upstream_status"] if sent else 499)
                    if not sent and all(e.get("_started") is None for e in entries):
                        return  # "read": the response was read to its end for nobody

        forward = asyncio.ensure_future(client_to_upstream())
        try:
            await upstream_to_client()  # until the server closes the connection
        finally:
            forward.cancel()
            await asyncio.gather(forward, return_exceptions=True)
            client_closed = not state["client_open"]
            client_gone()
            for entry in entries:  # responses cut short
                self._finish(entry, 499 if client_closed else 502)
            for w in (client_w, up_w):
                w.close()
            self.writers.difference_update((client_w, up_w))


@contextlib.contextmanager
def gateway(upstream_base_url: str, *, on_client_close: str = "close") -> Iterator[Gateway]:
    """Run a gateway on 127.0.0.1 (a free port) in front of `upstream_base_url`."""
    parts = urlsplit(upstream_base_url)
    gw = Gateway(parts.hostname or "127.0.0.1", parts.port or 80, on_client_close)
    loop = asyncio.new_event_loop()
    started: dict = {}
    ready = threading.Event()

    async def main(stop: asyncio.Event) -> None:
        server = await asyncio.start_server(gw.handle, "127.0.0.1", 0)
        started["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await stop.wait()
        finally:
            server.close()
            for w in list(gw.writers):
                w.close()
            for t in list(gw.tasks):
                t.cancel()
            await asyncio.gather(*gw.tasks, return_exceptions=True)
            await server.wait_closed()

    def run() -> None:
        asyncio.set_event_loop(loop)
        started["stop"] = asyncio.Event()
        try:
            loop.run_until_complete(main(started["stop"]))
        except BaseException as exc:  # e.g. no free port: reported to the caller
            started["error"] = exc
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="srelab-gateway", daemon=True)
    thread.start()
    ready.wait(10.0)
    try:
        if "port" not in started:
            raise RuntimeError(f"the gateway did not start: {started.get('error')!r}")
        gw.url = f"http://127.0.0.1:{started['port']}"
        yield gw
    finally:
        if not loop.is_closed() and "stop" in started:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(started["stop"].set)
        thread.join(10.0)
