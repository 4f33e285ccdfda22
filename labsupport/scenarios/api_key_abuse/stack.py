"""The API's stack for real: Redis, the engine, the gateway; rounds of traffic through it (lab 291).

    >>> from labsupport.scenarios.api_key_abuse import stack, variant
    >>> from labsupport.scenarios.api_key_abuse.production import PRODUCTION
    >>> v = variant(0)
    >>> with stack.running() as s, s.gateway(PRODUCTION, v.keys) as gw:  # doctest: +SKIP
    ...     r = gw.play(v.traffics(heavy=False, round_s=2.0), round_s=2.0, label="quiet")
    >>> r.summary()["ok"] > 0  # doctest: +SKIP
    True

`running()` starts a real `redis-server` and the engine (`srelab serve`, the lab's settings:
`ENGINE_ARGS`) side by side; `Stack.gateway(scripts, keys)` starts gateway replicas in front of
the engine, whose limits are `scripts` (a `production.Scripts` pair) in that Redis. `play`
runs one round of client traffic through them and returns a `Round`: what each client saw,
the gateway's access log and the engine's /metrics (before, after, and sampled every 0.1 s).
Redis is flushed before each round, so every key starts it with its full allowance. Leaving the
blocks stops everything.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from labsupport import wire
from labsupport.gateway import clients
from labsupport.gateway.clients import ClientResult
from labsupport.gateway.config import GatewayConfig
from labsupport.gateway.launcher import Gateways, gateways
from labsupport.gateway.redisd import RedisServer, redis_server
from labsupport.serving.launcher import ServerProcess, serve_subprocess
from labsupport.serving.loadgen import percentile

GAUGES = {
    "running": "vllm:num_requests_running",
    "waiting": "vllm:num_requests_waiting",
    "kv": "vllm:kv_cache_usage_perc",
    "preemptions": "vllm:num_preemptions_total",
}
SAMPLE_EVERY_S = 0.1
CUT_AFTER_S = 0.5  # streams still running this long after a round's end are cut


@wire.record
@dataclass
class Round:
    label: str
    scripts: str  # which limits the gateway ran
    round_s: float
    results: list  # ClientResult of every request, start_s from the round's start
    log: list  # the gateway's access log, start_s/end_s from the round's start
    metrics_before: str
    metrics_after: str
    samples: list = field(default_factory=list)  # (t_s, running, waiting, kv_perc, preemptions)
    device: str = ""

    def ok(self, *, keys=None, since_s: float = 0.0) -> list[ClientResult]:
        return [r for r in self.results if r.outcome in ("ok", "cut") and r.ttft_s is not None
                and r.start_s >= since_s and (keys is None or r.key in keys)]  # fmt: skip

    def ttft_p95_ms(self, keys, since_s: float = 0.0) -> float | None:
        values = [r.ttft_s * 1000 for r in self.ok(keys=keys, since_s=since_s)]
        return percentile(values, 95)

    def summary(self) -> dict:
        out: dict = {}
        for r in self.results:
            out[r.outcome] = out.get(r.outcome, 0) + 1
        return out


def _gauges(text: str) -> dict:
    out = {}
    for name, metric in GAUGES.items():
        found = re.findall(rf"^{re.escape(metric)}\{{[^}}]*\}} (\S+)$", text, re.M)
        out[name] = sum(float(x) for x in found) if found else 0.0
    return out


class Sampler:
    """Scrapes the engine's /metrics every SAMPLE_EVERY_S in a thread, until stopped."""

    def __init__(self, base_url: str, t0: float):
        self.url, self.t0 = base_url + "/metrics", t0
        self.samples: list[tuple] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="srelab-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while not self._stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    g = _gauges(client.get(self.url).text)
                    self.samples.append((round(time.perf_counter() - self.t0, 3), g["running"],
                                         g["waiting"], g["kv"], g["preemptions"]))  # fmt: skip
                self._stop.wait(SAMPLE_EVERY_S)


@dataclass
class Gateway:
    stack: Stack
    gws: Gateways
    scripts_label: str

    @property
    def urls(self) -> list[str]:
        return self.gws.urls

    def _drained(self, logged: dict, requests: int, timeout_s: float = 10.0) -> None:
        """Until the gateways logged (so settled) every request of the round."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = sum(g.access_log_size() - logged[g.base_url] for g in self.gws.replicas)
            if done >= requests:
                return
            time.sleep(0.05)

    def play(self, traffics: list, *, round_s: float, label: str,
             cut_after_s: float = CUT_AFTER_S) -> Round:  # fmt: skip
        """One round of `traffics` (see the module docstring)."""
        s = self.stack
        s.store.client().flushall()
        metrics_before = s.metrics()
        logged = {g.base_url: g.access_log_size() for g in self.gws.replicas}
        t0, wall0 = time.perf_counter(), time.time()
        with Sampler(s.engine.base_url, t0) as sampler:
            results = clients.run(self.urls, traffics, grace_s=cut_after_s)
            s.wait_idle()
        self._drained(logged, len(results))
        log = []
        for g in self.gws.replicas:
            for e in g.access_log(since=logged[g.base_url]):
                e["start_s"], e["end_s"] = e["start_s"] - wall0, e["end_s"] - wall0
                log.append(e)
        log.sort(key=lambda e: e["start_s"])
        results.sort(key=lambda r: r.start_s)
        return Round(label, self.scripts_label, round_s, results, log, metrics_before,
                     s.metrics(), sampler.samples, s.device)  # fmt: skip


@dataclass
class Stack:
    store: RedisServer
    engine: ServerProcess

    @property
    def device(self) -> str:
        return str(self.engine.startup.get("device", "cpu"))

    def metrics(self) -> str:
        return httpx.get(self.engine.base_url + "/metrics", timeout=10, trust_env=False).text

    def wait_idle(self, timeout_s: float = 20.0) -> bool:
        """Until the engine runs and queues nothing (the cut streams are aborted)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            g = _gauges(self.metrics())
            if g["running"] == 0 and g["waiting"] == 0:
                return True
            time.sleep(0.05)
        return False

    @contextlib.contextmanager
    def gateway(self, scripts, keys: dict, *, replicas: int = 1) -> Iterator[Gateway]:
        """Gateway replicas in front of the engine, running `scripts` for `keys`."""
        config = GatewayConfig({"engine": self.engine.base_url}, keys=dict(keys),
                               redis_url=self.store.url, admit_lua=scripts.admit,
                               settle_lua=scripts.settle, name="api-gateway")  # fmt: skip
        with gateways(config, replicas=replicas) as gws:
            yield Gateway(self, gws, scripts.label)


@contextlib.contextmanager
def running(engine_args: tuple[str, ...] | None = None) -> Iterator[Stack]:
    """Redis and the engine, until the block ends."""
    from labsupport.scenarios.api_key_abuse import ENGINE_ARGS

    with redis_server() as store:
        with serve_subprocess(*(engine_args or ENGINE_ARGS), startup_timeout_s=120) as engine:
            yield Stack(store, engine)
