"""What an on-call engineer can gather from outside a model server in a few seconds.

    >>> from labsupport.scenarios.port_open_but_not_serving.evidence import Evidence
    >>> from labsupport.serving.scrape import synthetic
    >>> ev = Evidence(1.0, tcp=[True, True], health=[200, 200], completion=[True, True],
    ...               scrapes=[synthetic(10, 2, 0), synthetic(14, 2, 0)],
    ...               cpu=[(0.0, 3.0, 3.1), (1.0, 3.2, 3.4), (2.0, 3.4, 3.7)])
    >>> ev.ticks, ev.scrapes[1].value("vllm:num_requests_running")
    (2, 2.0)

`gather(base_url, pid, ticks)` sends, every `period_s` and each with a 1 s deadline (the
kubelet's default `timeoutSeconds`): a TCP connect to the port, `GET /health`, a real 1-token
completion, `GET /metrics` (kept whole as a `Scrape`); and it reads the server process's CPU
time, once per tick and once at the end: `on_cpu_s` (user + system, all threads, as `top` or
`ps` count it) and `runnable_s` (that, plus the time its threads waited for a free core:
`/proc/PID/task/*/schedstat`), so what the process *wanted* shows even on a crowded machine.
The result is an `Evidence` record, plain data that can cross to another process.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from dataclasses import dataclass, field

import psutil

from labsupport import wire
from labsupport.k8s.probes import ProbeTarget, TCPSocket, run_probe
from labsupport.serving.scrape import Scrape, scrape_metrics

TIMEOUT_S = 1.0
PORT = 8000  # the container port the probes name; mapped to the server's real port


@wire.record
@dataclass
class Evidence:
    """Ticks about `period_s` apart; lists are per tick, in order."""

    period_s: float
    tcp: list = field(default_factory=list)  # bool: a TCP connect completed within 1 s
    health: list = field(default_factory=list)  # GET /health: HTTP status; None: no answer in 1 s
    completion: list = field(default_factory=list)  # bool: a 1-token completion, 200 within 1 s
    scrapes: list = field(default_factory=list)  # Scrape of GET /metrics (.ok False: no answer)
    cpu: list = field(default_factory=list)  # (t_s, on_cpu_s, runnable_s): ticks + 1 samples

    @property
    def ticks(self) -> int:
        return len(self.scrapes)

    def table(self) -> str:
        """One line per tick, as an on-call engineer would jot them down."""
        head = ("t (s)", "TCP", "/health", "1-token", "/metrics", "on-CPU s", "runnable s")
        widths = (6, 5, 8, 8, 9, 9, 11)
        lines = [" ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True))]
        for i, scrape in enumerate(self.scrapes):
            t, on_cpu, runnable = self.cpu[i] if i < len(self.cpu) else (float("nan"),) * 3
            health = self.health[i] if i < len(self.health) else "-"
            lines.append(
                f"{t:6.1f} {_mark(self.tcp, i):>5} {health if health is not None else 'none':>8} "
                f"{_mark(self.completion, i):>8} {'ok' if scrape.ok else 'none':>9} "
                f"{on_cpu:9.2f} {runnable:11.2f}"
            )
        return "\n".join(lines)


def _mark(values: list, i: int) -> str:
    if i >= len(values) or values[i] is None:
        return "-"
    return "ok" if values[i] else "FAIL"


def _cpu_s(pid: int) -> tuple[float, float]:
    """(on-CPU seconds, runnable seconds) of every thread of `pid` so far."""
    try:
        t = psutil.Process(pid).cpu_times()
        on_cpu = float(t.user + t.system)
    except psutil.Error:
        return float("nan"), float("nan")
    waited_ns = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                waited_ns += int(f.read().split()[1])  # run-queue wait (ns)
        except (OSError, ValueError, IndexError):
            continue
    return on_cpu, on_cpu + waited_ns / 1e9


def _completion(base_url: str) -> bool:
    import httpx

    body = {"prompt": "ping", "max_tokens": 1, "stream": False}
    try:
        r = httpx.post(f"{base_url}/v1/completions", json=body, timeout=TIMEOUT_S, trust_env=False)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def _health(base_url: str) -> int | None:
    import httpx

    try:
        return httpx.get(f"{base_url}/health", timeout=TIMEOUT_S, trust_env=False).status_code
    except httpx.HTTPError:
        return None


def gather(base_url: str, pid: int, ticks: int = 4, period_s: float = 1.0, pool=None) -> Evidence:
    """`ticks` ticks of evidence about the server at `base_url` (its process: `pid`)."""
    port = int(base_url.rsplit(":", 1)[1])
    target = ProbeTarget(ports={PORT: port})
    own_pool = pool is None
    pool = pool or concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="srelab-oncall")
    ev = Evidence(period_s)
    t0 = time.monotonic()
    try:
        for i in range(ticks):
            time.sleep(max(0.0, t0 + i * period_s - time.monotonic()))
            cpu = (time.monotonic() - t0, *_cpu_s(pid))
            scrape = pool.submit(scrape_metrics, base_url, TIMEOUT_S)
            tcp = pool.submit(run_probe, TCPSocket(PORT), target, TIMEOUT_S)
            health = pool.submit(_health, base_url)
            completion = pool.submit(_completion, base_url)
            ev.scrapes.append(scrape.result())
            ev.tcp.append(tcp.result().ok)
            ev.health.append(health.result())
            ev.completion.append(completion.result())
            ev.cpu.append(cpu)
        time.sleep(max(0.0, t0 + ticks * period_s - time.monotonic()))
        ev.cpu.append((time.monotonic() - t0, *_cpu_s(pid)))
    finally:
        if own_pool:
            pool.shutdown(wait=True)
    return ev


__all__ = ["Evidence", "Scrape", "gather"]
