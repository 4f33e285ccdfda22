"""A loopback TCP proxy that keeps reading the upstream response after its client hung up.

    >>> import httpx
    >>> from labsupport.serving.buffering_proxy import ignore_client_abort_proxy
    >>> from labsupport.serving.launcher import serve_subprocess
    >>> with serve_subprocess() as srv, ignore_client_abort_proxy(srv.base_url) as url:
    ...     httpx.get(url + "/health", trust_env=False).status_code
    200

It behaves like nginx with `proxy_ignore_client_abort on`, or a gateway that buffers whole
responses: bytes go both ways unchanged, but when the client closes its connection the proxy
keeps its upstream connection open and reads the response to the end. The server therefore
never sees the disconnect (lab 286). Each upstream connection ends when the server closes it
(uvicorn closes idle keep-alive connections after 5 s) or when the proxy stops. It runs on its
own event loop in a thread; leaving the block closes every socket and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

CHUNK_BYTES = 65536


class _Proxy:
    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.tasks: set[asyncio.Task] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.client_closes = 0  # client connections closed while their upstream stayed open

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        self.tasks.add(asyncio.current_task())
        try:
            await self._pipe(client_r, client_w)
        except asyncio.CancelledError:
            pass  # the proxy is stopping (asyncio logs an error for a cancelled handler task)
        finally:
            self.tasks.discard(asyncio.current_task())

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        self.writers.add(client_w)
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            self.writers.discard(client_w)
            return
        self.writers.add(up_w)
        state = {"client_open": True}

        async def client_to_upstream() -> None:
            with contextlib.suppress(OSError):
                while data := await client_r.read(CHUNK_BYTES):
                    up_w.write(data)
                    await up_w.drain()
            # The client is gone. `proxy_ignore_client_abort on`: the upstream is NOT closed.
            state["client_open"] = False
            self.client_closes += 1

        async def upstream_to_client() -> None:
            with contextlib.suppress(OSError):
                while data := await up_r.read(CHUNK_BYTES):
                    if state["client_open"]:
                        with contextlib.suppress(OSError):
                            client_w.write(data)
                            await client_w.drain()
                    # else: read and drop, so the server streams on as if someone listened

        forward = asyncio.ensure_future(client_to_upstream())
        try:
            await upstream_to_client()  # until the server closes the connection
        finally:
            forward.cancel()
            await asyncio.gather(forward, return_exceptions=True)
            for w in (client_w, up_w):
                w.close()
            self.writers.difference_update((client_w, up_w))


@contextlib.contextmanager
def ignore_client_abort_proxy(upstream_base_url: str) -> Iterator[str]:
    """Run the proxy on 127.0.0.1 (a free port) in front of `upstream_base_url`; yields its URL."""
    parts = urlsplit(upstream_base_url)
    proxy = _Proxy(parts.hostname or "127.0.0.1", parts.port or 80)
    loop = asyncio.new_event_loop()
    started: dict = {}
    ready = threading.Event()

    async def main(stop: asyncio.Event) -> None:
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        started["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await stop.wait()
        finally:
            server.close()
            for w in list(proxy.writers):
                w.close()
            for t in list(proxy.tasks):
                t.cancel()
            await asyncio.gather(*proxy.tasks, return_exceptions=True)
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

    thread = threading.Thread(target=run, name="srelab-proxy", daemon=True)
    thread.start()
    ready.wait(10.0)
    try:
        if "port" not in started:
            raise RuntimeError(f"the proxy did not start: {started.get('error')!r}")
        yield f"http://127.0.0.1:{started['port']}"
    finally:
        if not loop.is_closed() and "stop" in started:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(started["stop"].set)
        thread.join(10.0)
