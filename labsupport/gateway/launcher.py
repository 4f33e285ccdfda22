"""Start gateways as real subprocesses for a lab or a test, and always clean them up.

    >>> import httpx
    >>> from labsupport.gateway.config import GatewayConfig
    >>> from labsupport.gateway.launcher import gateway_subprocess
    >>> with gateway_subprocess(GatewayConfig({"engine": "http://127.0.0.1:9"})) as gw:
    ...     httpx.get(gw.base_url + "/health", trust_env=False).json()
    {'status': 'ok'}

Each gateway runs `python -m labsupport.gateway.cli --port 0 --config pickle:...` in its own
session; the block waits for its `listening on URL` line. `replicas=N` starts N copies of the
same config at once (one per port, as N pods behind a load balancer): the block yields a
`Gateways` with their URLs. Leaving the block sends SIGTERM to every group, SIGKILL after
`stop_timeout_s`, and reaps them.
"""

from __future__ import annotations

import contextlib
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from labsupport.serving.launcher import child_env, stop_group
from labsupport.serving.shutdown import encode_handler

_LISTENING = re.compile(r"^listening on (http://\S+)")


class GatewayStartError(RuntimeError):
    """A gateway exited or did not listen in time; the message holds its output."""


@dataclass
class GatewayProcess:
    base_url: str
    pid: int
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def access_log_size(self, timeout_s: float = 10.0) -> int:
        """How many responses the gateway has logged since it started."""
        r = httpx.get(f"{self.base_url}/gateway/log", params={"since": 10**12},
                      timeout=timeout_s, trust_env=False)  # fmt: skip
        r.raise_for_status()
        return int(r.json()["logged"])

    def access_log(self, since: int = 0, timeout_s: float = 10.0) -> list[dict]:
        """The gateway's access log (entries from the `since`-th on), as dicts."""
        r = httpx.get(f"{self.base_url}/gateway/log", params={"since": since},
                      timeout=timeout_s, trust_env=False)  # fmt: skip
        r.raise_for_status()
        return r.json()["entries"]


@dataclass
class Gateways:
    replicas: list[GatewayProcess]

    @property
    def urls(self) -> list[str]:
        return [g.base_url for g in self.replicas]

    def access_log(self) -> list[dict]:
        """Every replica's log, merged in the order requests started."""
        entries = [e for g in self.replicas for e in g.access_log()]
        return sorted(entries, key=lambda e: e["start_s"])


def _pump(stream, lines: list[str], events: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line)
        events.put(line)
    events.put(None)


def _spawn(config_spec: str) -> tuple[subprocess.Popen, list[str], queue.Queue]:
    argv = [sys.executable, "-m", "labsupport.gateway.cli", "--port", "0", "--config", config_spec]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, bufsize=1,
                            start_new_session=True, env=child_env())  # fmt: skip
    lines: list[str] = []
    events: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines, events), daemon=True).start()
    return proc, lines, events


def _wait_listening(proc, lines: list[str], events: queue.Queue, deadline: float) -> str:
    while True:
        try:
            line = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise GatewayStartError("gateway not listening in time; output:\n"
                                    + "".join(lines)[-3000:]) from None  # fmt: skip
        if line is None:
            proc.wait(5.0)
            raise GatewayStartError(f"gateway exited with {proc.returncode} before listening; "
                                    "output:\n" + "".join(lines)[-3000:])  # fmt: skip
        if m := _LISTENING.match(line):
            return m.group(1)


@contextlib.contextmanager
def gateways(config, *, replicas: int = 1, startup_timeout_s: float = 60.0,
             stop_timeout_s: float = 5.0) -> Iterator[Gateways]:  # fmt: skip
    """`replicas` gateways of `config` (a GatewayConfig) until the block ends."""
    spec = encode_handler(config)
    started = []
    try:
        for _ in range(replicas):
            started.append(_spawn(spec))
        deadline = time.monotonic() + startup_timeout_s
        running = [
            GatewayProcess(_wait_listening(proc, lines, events, deadline), proc.pid, proc, lines)
            for proc, lines, events in started
        ]
        yield Gateways(running)
    finally:
        for proc, _, _ in started:
            stop_group(proc, stop_timeout_s)
            if proc.stdout is not None:
                proc.stdout.close()


@contextlib.contextmanager
def gateway_subprocess(config, **kwargs) -> Iterator[GatewayProcess]:
    """One gateway of `config` until the block ends (see `gateways`)."""
    with gateways(config, replicas=1, **kwargs) as gws:
        yield gws.replicas[0]
