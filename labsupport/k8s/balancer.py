"""A local L4 load balancer: what a Kubernetes Service (kube-proxy) does, on 127.0.0.1.

    >>> from labsupport.k8s.balancer import Balancer
    >>> with Balancer() as lb:
    ...     lb.set_backends([("web-0", "127.0.0.1", 1)])
    ...     lb.url.startswith("http://127.0.0.1:")
    True

Each accepted TCP connection goes to the next ready endpoint, round robin, and stays there
(as with kube-proxy, balancing is per connection: a keep-alive connection is pinned to one
pod, and removing an endpoint does not cut connections already open to it). Bytes are copied
as they arrive in both directions (TCP_NODELAY, no buffering), so a streamed response streams.
A client's half-close is passed on upstream, a client reset or vanished client resets the
upstream connection, so the server sees the disconnect. No endpoint, or an endpoint that
refuses: the client's connection is reset (no retry, like iptables/IPVS).
`connection_log` keeps the last connections (client address, pod, time, outcome), like a
gateway's access log: which pod got the connection a client opened from a given port.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import struct
import threading
import time
from dataclasses import dataclass

LOG_CONNECTIONS = 20_000


@dataclass(frozen=True)
class Connection:
    """One accepted client connection: who, to which pod, when, and whether it was proxied."""

    client: tuple  # the client's (host, port), as the balancer saw it
    backend: str | None  # pod name; None when there was no endpoint
    opened_at: float  # time.time() at accept
    outcome: str  # proxied | no_endpoint | connect_failed


class Balancer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout_s: float = 2.0,
        name: str = "service",
    ):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the lab balancer binds loopback only")
        self.host, self.port, self.name = host, port, name
        self.connect_timeout_s = connect_timeout_s
        self._backends: list[tuple[str, str, int]] = []
        self._rr = 0
        self._lock = threading.Lock()
        self.connections: collections.Counter = collections.Counter()  # pod name -> opened
        self.active: collections.Counter = collections.Counter()
        self.connect_failures: collections.Counter = collections.Counter()
        self.no_endpoint = 0
        self.connection_log: collections.deque = collections.deque(maxlen=LOG_CONNECTIONS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set = set()
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> Balancer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Balancer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._handle, self.host, self.port, reuse_address=True, backlog=512
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as e:
                errors.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"balancer-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def close(self) -> None:
        """Stop listening, reset every open connection, stop the loop thread."""
        loop, self._loop = self._loop, None
        if loop is None or not loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            fut.result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=10)

    async def _shutdown(self) -> None:
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await self._server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- endpoints ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def backends(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return list(self._backends)

    def set_backends(self, backends) -> None:
        """Replace the endpoint list: (name, host, port) tuples. Open connections stay."""
        with self._lock:
            self._backends = [tuple(b) for b in backends]

    def _pick(self) -> tuple[str, str, int] | None:
        with self._lock:
            if not self._backends:
                return None
            backend = self._backends[self._rr % len(self._backends)]
            self._rr += 1
            return backend

    # ---- proxying -------------------------------------------------------------------------
    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter):
        self._writers.add(cwriter)
        backend = self._pick()
        peer, now = cwriter.get_extra_info("peername"), time.time()
        if backend is None:
            self.no_endpoint += 1
            self.connection_log.append(Connection(peer, None, now, "no_endpoint"))
            _reset(cwriter)
            self._writers.discard(cwriter)
            return
        name, host, port = backend
        try:
            ureader, uwriter = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.connect_timeout_s
            )
        except (OSError, asyncio.TimeoutError):
            self.connect_failures[name] += 1
            self.connection_log.append(Connection(peer, name, now, "connect_failed"))
            _reset(cwriter)
            self._writers.discard(cwriter)
            return
        self._writers.add(uwriter)
        for w in (cwriter, uwriter):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections[name] += 1
        self.connection_log.append(Connection(peer, name, now, "proxied"))
        self.active[name] += 1
        up = asyncio.ensure_future(_pipe(creader, uwriter))
        down = asyncio.ensure_future(_pipe(ureader, cwriter))
        try:
            pending = {up, down}
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(t.exception() is not None for t in done):
                    # one side reset or vanished: reset the other so it learns at once
                    _reset(cwriter)
                    _reset(uwriter)
                    for t in pending:
                        t.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    break
        except asyncio.CancelledError:
            _reset(cwriter)
            _reset(uwriter)
            up.cancel()
            down.cancel()
            raise
        finally:
            self.active[name] -= 1
            for w in (cwriter, uwriter):
                self._writers.discard(w)
                if not w.transport.is_closing():
                    w.transport.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side; raise on a reset or a dead peer."""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        if writer.transport.is_closing():
            raise ConnectionResetError("peer went away")
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof() and not writer.transport.is_closing():
        try:
            writer.write_eof()
        except OSError as e:
            raise ConnectionResetError(str(e)) from e


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN, so the peer sees an error, not a clean end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
