"""Every probe against every fault, on a live server: which probe sees which failure.

    >>> from labsupport.scenarios.port_open_but_not_serving import matrix
    >>> m = matrix.run_matrix(["idle", "wedged_engine"], ticks=3)       # ~15 s
    >>> m.failure_rate("HTTP /health", "wedged_engine")                # /health: engine "alive"
    0.0
    >>> m.failure_rate("1-token inference", "wedged_engine")
    1.0
    >>> m = m.with_probe("heartbeat", lambda prev, now: now.ok)        # any f(prev, now) -> bool
    >>> print(m.table())                                                # doctest: +SKIP

The server (`labsupport.serving`, a real process) runs each scenario in turn; faults are
switched on at run time (`POST /admin/fault`) under light traffic, each stuck fault on a fresh
server. Every `period_s` the prober sends, at the same time and each with a 1 s deadline:
a TCP connect, `GET /health`, a real 1-token completion, and `GET /metrics` (kept as a
`Scrape`). In the idle column the scrapes are taken first, alone, since a 1-token probe is
itself traffic. `failure_rate(probe, scenario)` is the share of ticks on which a probe failed.
`with_probe(name, fn)` adds a row computed from the scrapes: `fn(previous, current)` on each
pair of consecutive scrapes (a failed current scrape fails the row, as it would fail a probe).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from dataclasses import dataclass, field, replace

import httpx

from labsupport.k8s.probes import Call, HTTPGet, ProbeTarget, TCPSocket, run_probe
from labsupport.scenarios.port_open_but_not_serving import probesets
from labsupport.scenarios.port_open_but_not_serving.runs import (
    FAULT_VALUES,
    HEAVY,
    LIGHT,
    OVERLOAD_EXTRA,
)
from labsupport.serving.admin import post_fault
from labsupport.serving.launcher import serve_subprocess
from labsupport.serving.load import SteadyLoad
from labsupport.serving.scrape import Scrape, scrape_metrics

SCENARIOS = ("idle", "healthy", "heavy_load", "overload", *FAULT_VALUES)
LABELS = {
    "idle": "idle",
    "healthy": "light load",
    "heavy_load": "heavy load",
    "overload": "overload",
    "gil_busy_loop": "GIL held",
    "blocked_event_loop": "loop blocked",
    "wedged_engine": "engine wedged",
}
PORT = probesets.CONTAINER_PORT
PROBES = {  # name -> handler, each run with a 1 s deadline (the kubelet's default timeoutSeconds)
    "TCP connect": TCPSocket(PORT),
    "HTTP /health": HTTPGet("/health", PORT),
    "1-token inference": Call(probesets.InferenceCheck(), "inference"),
}
SCRAPE_ROW = "/metrics answers"
TIMEOUT_S = 1.0
STOP_TIMEOUT_S = 1.0  # then SIGKILL: a server whose loop or GIL is stuck never stops by itself
SETTLE_S = {"heavy_load": 2.5, "overload": 2.5}  # let the queue build before measuring


@dataclass
class Tick:
    t_s: float  # seconds since the scenario's measurements began
    ok: dict  # probe name -> passed ({} on a quiet tick: the scrape alone)
    messages: dict  # probe name -> what it saw
    scrape: Scrape | None  # None when the tick did not scrape


@dataclass
class MatrixRun:
    scenarios: list[str]
    ticks: dict = field(default_factory=dict)  # scenario -> [Tick]
    extra: dict = field(default_factory=dict)  # row name -> fn(previous, current)
    device: str = ""

    @property
    def probes(self) -> list[str]:
        return [*PROBES, SCRAPE_ROW, *self.extra]

    def scrapes(self, scenario: str) -> list[Scrape]:
        return [t.scrape for t in self.ticks[scenario] if t.scrape is not None]

    def results(self, probe: str, scenario: str) -> list[bool]:
        """Pass/fail of `probe` at each tick of `scenario` that ran it."""
        if probe in self.extra:
            fn, out, previous = self.extra[probe], [], None
            for now in self.scrapes(scenario):
                try:
                    out.append(bool(now.ok and fn(previous, now) is True))
                except Exception:  # a rule that raises fails its probe, as in the prober
                    out.append(False)
                previous = now
            return out
        if probe == SCRAPE_ROW:
            return [s.ok for s in self.scrapes(scenario)]
        return [t.ok[probe] for t in self.ticks[scenario] if probe in t.ok]

    def failure_rate(self, probe: str, scenario: str) -> float:
        res = self.results(probe, scenario)
        return sum(not r for r in res) / len(res) if res else float("nan")

    def rates(self) -> list[list[float]]:
        return [[self.failure_rate(p, s) for s in self.scenarios] for p in self.probes]

    def with_probe(self, name: str, fn) -> MatrixRun:
        """A copy with one more row: `fn(previous, current) -> bool` over the scrapes."""
        return replace(self, extra={**self.extra, name: fn})

    def pairs(self, scenario: str) -> list[tuple[Scrape, Scrape]]:
        """Consecutive scrapes of a scenario that both succeeded (about period_s apart)."""
        s = self.scrapes(scenario)
        return [(a, b) for a, b in zip(s, s[1:], strict=False) if a.ok and b.ok]

    def table(self) -> str:
        width = max(len(p) for p in self.probes) + 2
        cols = [LABELS.get(s, s) for s in self.scenarios]
        lines = [" " * width + "".join(f"{c:>15}" for c in cols)]
        for probe, row in zip(self.probes, self.rates(), strict=True):
            cells = "".join(f"{'fails ' + format(r, '4.0%') if r else 'passes':>15}" for r in row)
            lines.append(f"{probe:<{width}}{cells}")
        return "\n".join(lines)


def _tick(pool, target: ProbeTarget, base_url: str, t_s: float, probes: bool, scrape: bool):
    handlers = PROBES if probes else {}
    futures = {name: pool.submit(run_probe, h, target, TIMEOUT_S) for name, h in handlers.items()}
    taken = pool.submit(scrape_metrics, base_url, TIMEOUT_S) if scrape else None
    results = {name: f.result() for name, f in futures.items()}
    return Tick(
        t_s,
        {n: r.ok for n, r in results.items()},
        {n: r.message for n, r in results.items()},
        None if taken is None else taken.result(),
    )


def _measure(pool, srv, ticks: int, period_s: float, probes=True, scrape=True) -> list[Tick]:
    target = ProbeTarget(ports={PORT: srv.port})
    out, t0 = [], time.monotonic()
    for i in range(ticks):
        due = t0 + i * period_s
        time.sleep(max(0.0, due - time.monotonic()))
        t_s = time.monotonic() - t0
        out.append(_tick(pool, target, srv.base_url, t_s, probes, scrape))
    time.sleep(max(0.0, t0 + ticks * period_s - time.monotonic()))
    return out


def _fault(srv, name: str, enabled: bool) -> None:
    value = FAULT_VALUES[name] if enabled else None
    with contextlib.suppress(httpx.HTTPError):
        post_fault(srv.base_url, srv.admin_token, name, value, enabled=enabled, timeout_s=15.0)


def run_matrix(
    scenarios=SCENARIOS, *, ticks: int = 4, period_s: float = 1.0, probes: bool = True, echo=None
) -> MatrixRun:
    """Measure every probe in every scenario; stuck faults each get a fresh server.

    probes=False: scrapes only (no TCP, /health or inference probes), e.g. to collect evidence.
    """
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    run = MatrixRun(list(scenarios))
    shared = [s for s in scenarios if s not in ("gil_busy_loop", "blocked_event_loop")]
    own = [s for s in scenarios if s in ("gil_busy_loop", "blocked_event_loop")]
    groups = ([shared] if shared else []) + [[s] for s in own]
    with concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="srelab-prober") as pool:
        for group in groups:
            with serve_subprocess(*probesets.SERVER_ARGS, stop_timeout_s=STOP_TIMEOUT_S) as srv:
                run.device = srv.startup.get("device", run.device)
                for scenario in group:
                    t0 = time.monotonic()
                    run.ticks[scenario] = _scenario(pool, srv, scenario, ticks, period_s, probes)
                    if echo:
                        echo(f"{LABELS[scenario]}: {time.monotonic() - t0:.1f} s")
    return run


def _scenario(pool, srv, scenario: str, ticks: int, period_s: float, probes: bool):
    if scenario == "idle":
        time.sleep(0.5)  # whatever ran before has drained
        # a 1-token probe is itself traffic: scrape the idle server first, with nothing else
        quiet = _measure(pool, srv, ticks, period_s, probes=False)
        return quiet + (_measure(pool, srv, ticks, period_s, scrape=False) if probes else [])
    with contextlib.ExitStack() as stack:
        stack.enter_context(SteadyLoad(srv.base_url, name="light", **LIGHT))
        if scenario in ("heavy_load", "overload"):
            stack.enter_context(SteadyLoad(srv.base_url, name="heavy", **HEAVY))
        if scenario == "overload":
            stack.enter_context(SteadyLoad(srv.base_url, name="overload", **OVERLOAD_EXTRA))
        if scenario in FAULT_VALUES:
            time.sleep(0.5)
            _fault(srv, scenario, True)
        time.sleep(SETTLE_S.get(scenario, 1.0))
        ticks_out = _measure(pool, srv, ticks, period_s, probes=probes)
        if scenario == "wedged_engine":  # the same server runs on: let the engine go again
            _fault(srv, scenario, False)
        return ticks_out
