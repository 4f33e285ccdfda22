"""Every probe in every situation, on live servers: which probe sees which failure.

    >>> from labsupport.scenarios.port_open_but_not_serving import matrix, variant
    >>> m = matrix.run_matrix(variant(0), ["idle", "wedged_engine"], ticks=3)   # ~15 s
    >>> m.failure_rate("HTTP /health", "wedged_engine")
    0.0
    >>> m.failure_rate("1-token completion", "wedged_engine")
    1.0
    >>> m = m.with_probe("mine", lambda previous, current: current.ok)   # any f(prev, now)
    >>> print(m.table())                                                  # doctest: +SKIP

The real server (`labsupport.serving`, the variant's capacity and step pace) runs each
situation in turn: idle, light traffic, the daily peak, a retry storm, and three faults switched
on at run time under light traffic (`POST /admin/fault`). Each situation gets a column of
`evidence.Evidence`: TCP connect, `GET /health`, a 1-token completion and `GET /metrics` every
`period_s`, each with a 1 s deadline, and the server process's CPU time. The faults that cannot
be switched off again run on servers of their own, started at the same time as the first.
`failure_rate(probe, situation)` is the share of ticks on which a probe failed;
`with_probe(name, fn)` adds a row computed from the scrapes: `fn(previous, current)` on each
pair of consecutive scrapes (a failed current scrape fails the row, as it would fail a probe).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from dataclasses import dataclass, field, replace

import httpx

from labsupport import progress
from labsupport.scenarios.port_open_but_not_serving.evidence import Evidence, gather
from labsupport.scenarios.port_open_but_not_serving.timeline import FAULTS
from labsupport.serving.admin import post_fault
from labsupport.serving.launcher import serve_subprocess
from labsupport.serving.load import SteadyLoad

SITUATIONS = (
    "idle", "healthy", "heavy_load", "overload", "gil_busy_loop", "blocked_event_loop",
    "wedged_engine",
)  # fmt: skip
NOTEBOOK_SITUATIONS = (  # what the notebook shows: the storm adds nothing the peak does not
    "idle", "healthy", "heavy_load", "gil_busy_loop", "blocked_event_loop", "wedged_engine",
)  # fmt: skip
SUITE_SITUATIONS = (  # the suite's shorter run: one healthy, one busy, and every fault
    "idle", "heavy_load", "gil_busy_loop", "blocked_event_loop", "wedged_engine",
)  # fmt: skip
OWN_SERVER = ("gil_busy_loop", "blocked_event_loop")  # they cannot be switched off in time
LABELS = {
    "idle": "idle",
    "healthy": "light traffic",
    "heavy_load": "daily peak",
    "overload": "retry storm",
    "gil_busy_loop": "GIL held",
    "blocked_event_loop": "loop blocked",
    "wedged_engine": "engine stalled",
}
PROBES = ("TCP connect", "HTTP /health", "1-token completion", "/metrics answers")
STOP_TIMEOUT_S = 1.0  # then SIGKILL: a server whose loop or GIL is stuck never stops by itself
SETTLE_S = {"heavy_load": 1.5, "overload": 1.5}  # let the queue build before measuring
FAULT_SETTLE_S = 1.0


@dataclass
class MatrixRun:
    situations: list[str]
    evidence: dict = field(default_factory=dict)  # situation -> Evidence
    extra: dict = field(default_factory=dict)  # row name -> fn(previous, current)
    device: str = ""

    @property
    def probes(self) -> list[str]:
        return [*PROBES, *self.extra]

    def results(self, probe: str, situation: str) -> list[bool]:
        """Pass/fail of `probe` at each tick of `situation`."""
        ev: Evidence = self.evidence[situation]
        if probe in self.extra:
            fn, out, previous = self.extra[probe], [], None
            for now in ev.scrapes:
                try:
                    out.append(bool(now.ok and fn(previous, now) is True))
                except Exception:  # a rule that raises fails its probe, as in the prober
                    out.append(False)
                previous = now
            return out
        column = {
            "TCP connect": ev.tcp,
            "HTTP /health": [h is not None and 200 <= h < 400 for h in ev.health],
            "1-token completion": ev.completion,
            "/metrics answers": [s.ok for s in ev.scrapes],
        }[probe]
        return [bool(x) for x in column]

    def failure_rate(self, probe: str, situation: str) -> float:
        res = self.results(probe, situation)
        return sum(not r for r in res) / len(res) if res else float("nan")

    def rates(self) -> list[list[float]]:
        return [[self.failure_rate(p, s) for s in self.situations] for p in self.probes]

    def with_probe(self, name: str, fn) -> MatrixRun:
        """A copy with one more row: `fn(previous, current) -> bool` over the scrapes."""
        return replace(self, extra={**self.extra, name: fn})

    def cores(self, situation: str, runnable: bool = False) -> float:
        """The server's CPU seconds per second of the situation (1.0: one core's worth);
        runnable=True counts the time its threads waited for a free core too."""
        cpu = self.evidence[situation].cpu
        k = 2 if runnable else 1
        (t0, *first), (t1, *last) = cpu[0], cpu[-1]
        return (last[k - 1] - first[k - 1]) / (t1 - t0) if t1 > t0 else float("nan")

    def table(self) -> str:
        width = max(len(p) for p in self.probes) + 2
        cols = [LABELS.get(s, s) for s in self.situations]
        lines = [" " * width + "".join(f"{c:>15}" for c in cols)]
        for probe, row in zip(self.probes, self.rates(), strict=True):
            cells = "".join(f"{'fails ' + format(r, '4.0%') if r else 'passes':>15}" for r in row)
            lines.append(f"{probe:<{width}}{cells}")
        for label, runnable in (("on CPU (cores)", False), ("runnable (cores)", True)):
            row = "".join(f"{self.cores(s, runnable):>15.2f}" for s in self.situations)
            lines.append(f"{label:<{width}}{row}")
        return "\n".join(lines)


def _start(variant, stack: contextlib.ExitStack, n: int) -> list:
    """n servers of the variant, started at the same time."""
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        entered = [
            pool.submit(
                lambda: stack.enter_context(
                    serve_subprocess(*variant.server_args(), stop_timeout_s=STOP_TIMEOUT_S)
                )
            )
            for _ in range(n)
        ]
        return [f.result() for f in entered]


def run_matrix(
    variant, situations=SITUATIONS, *, ticks: int = 4, period_s: float = 1.0, echo=None
) -> MatrixRun:
    """Gather evidence in every situation. The shared server goes through its situations in
    turn; the faults that stay on run at the same time, on servers of their own."""
    unknown = [s for s in situations if s not in SITUATIONS]
    if unknown:
        raise ValueError(f"unknown situations {unknown}; known: {', '.join(SITUATIONS)}")
    run = MatrixRun(list(situations))
    shared = [s for s in situations if s not in OWN_SERVER]
    groups = ([shared] if shared else []) + [[s] for s in situations if s in OWN_SERVER]
    found: dict = {}
    with (
        contextlib.ExitStack() as stack,
        progress.bar(len(situations) + 1, "situations", unit="situation") as bar,
    ):
        servers = _start(variant, stack, len(groups))
        bar.update()  # the servers are up
        run.device = servers[0].startup.get("device", "")
        with concurrent.futures.ThreadPoolExecutor(len(groups)) as pool:
            jobs = [
                pool.submit(_sequence, srv, variant, group, ticks, period_s, echo, found, bar)
                for srv, group in zip(servers, groups, strict=True)
            ]
            for job in jobs:
                job.result()
    run.evidence = {s: found[s] for s in situations}
    return run


def _sequence(srv, variant, situations, ticks: int, period_s: float, echo, found, bar) -> None:
    for situation in situations:
        t0 = time.monotonic()
        found[situation] = _situation(srv, variant, situation, ticks, period_s)
        bar.update()
        if echo:
            echo(f"{LABELS[situation]}: {time.monotonic() - t0:.1f} s")


def _situation(srv, variant, situation: str, ticks: int, period_s: float) -> Evidence:
    if situation == "idle":
        time.sleep(0.5)  # whatever ran before has drained
        return gather(srv.base_url, srv.pid, ticks, period_s)
    with contextlib.ExitStack() as stack:
        kw = {"max_tokens": variant.max_tokens, "request_timeout_s": 30.0}
        stack.enter_context(SteadyLoad(srv.base_url, concurrency=variant.light, name="light", **kw))
        if situation in ("heavy_load", "overload"):
            peak = variant.peak - variant.light
            stack.enter_context(SteadyLoad(srv.base_url, concurrency=peak, name="heavy", **kw))
        if situation == "overload":
            storm = variant.overload - variant.peak
            stack.enter_context(SteadyLoad(srv.base_url, concurrency=storm, name="storm", **kw))
        if situation in FAULTS:
            time.sleep(0.5)
            _switch(srv, situation, variant.fault_value(situation))
            time.sleep(FAULT_SETTLE_S)
        else:
            time.sleep(SETTLE_S.get(situation, 1.0))
        evidence = gather(srv.base_url, srv.pid, ticks, period_s)
        if situation == "wedged_engine":  # the same server runs on: let the engine go again
            _switch(srv, situation, None, enabled=False).join(15.0)
        return evidence


def _switch(srv, fault: str, value, enabled: bool = True) -> threading.Thread:
    """POST /admin/fault from a thread: a server whose loop the fault blocks answers late."""

    def send():
        with contextlib.suppress(httpx.HTTPError):
            post_fault(srv.base_url, srv.admin_token, fault, value, enabled=enabled,
                       timeout_s=15.0)  # fmt: skip

    thread = threading.Thread(target=send, name=f"srelab-fault-{fault}", daemon=True)
    thread.start()
    return thread
