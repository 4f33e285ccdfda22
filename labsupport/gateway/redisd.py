"""A real `redis-server` on a loopback port for the length of a block, and nothing left after.

    >>> from labsupport.gateway.redisd import redis_server
    >>> with redis_server() as store:
    ...     client = store.client()
    ...     client.incr("hits"), client.incr("hits")
    (1, 2)

The server is Debian's `redis-server` (`apt-get install redis-server`), started in its own
process group on 127.0.0.1 with persistence off (no RDB, no AOF: a lab's counters are not worth
a disk write) and its working directory in a temp dir that goes with it. Leaving the block stops
it (SIGTERM to the group, SIGKILL after a grace) and reaps it. A script that runs longer than a
second gets the other clients a BUSY error (`busy-reply-threshold`) until `SCRIPT KILL`.
`available()` says whether the binary is here; `store.url` is what a gateway is given
(`redis://127.0.0.1:PORT/0`).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

BINARY = "redis-server"
START_TIMEOUT_S = 15.0


class RedisUnavailable(RuntimeError):
    """redis-server is not installed, or did not start."""


def available() -> bool:
    return shutil.which(BINARY) is not None


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self, **kwargs):
        """A synchronous `redis.Redis` connected to this server (answers decoded as str)."""
        import redis

        kwargs.setdefault("decode_responses", True)
        return redis.Redis(host=self.host, port=self.port, **kwargs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _start(port: int, workdir: str, log) -> subprocess.Popen:
    argv = [
        BINARY, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", workdir, "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning",
        "--maxmemory", "128mb", "--maxclients", "1000", "--busy-reply-threshold", "1000",
    ]  # fmt: skip
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Run redis-server on a free loopback port until the block ends."""
    from labsupport.isolate import temp_dir
    from labsupport.serving.launcher import stop_group

    if not available():
        raise RedisUnavailable(
            "redis-server is not installed: `apt-get install redis-server` (Debian/Ubuntu) or "
            "`brew install redis` (macOS)"
        )
    with temp_dir() as workdir, open(workdir / "redis.log", "w+b") as log:
        proc, port = None, 0
        for _ in range(3):  # the free port may be taken between our check and its bind
            port = _free_port()
            proc = _start(port, str(workdir), log)
            deadline = time.monotonic() + START_TIMEOUT_S
            while proc.poll() is None and not _ping(port) and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None and _ping(port):
                break
            stop_group(proc, 2.0)
            proc = None
        if proc is None:
            log.seek(0)
            raise RedisUnavailable(f"redis-server did not start: {log.read().decode()[-2000:]}")
        try:
            yield RedisServer("127.0.0.1", port, proc.pid)
        finally:
            stop_group(proc, 5.0)
