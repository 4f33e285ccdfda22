"""Lab 285's runs: the clients' requests replayed against a server, with probes, as data.

    >>> from labsupport.scenarios import device_side_assert as scenario
    >>> from labsupport.scenarios.device_side_assert import runs
    >>> v = scenario.variant(0)
    >>> run = runs.run(v.calls("suite"), bad_ids=v.bad_ids("suite"))   # doctest: +SKIP
    >>> run.served_good, run.good                                  # doctest: +SKIP
    (7, 24)

`run(calls, ...)` starts the deployed server (`server.serve`, with your `check_request` and
`device_alive` when given), sends every call at its time (streams read to the end), probes
`GET /health` (and `GET /livez` with `probe_livez`) every `PROBE_PERIOD_S` from the first call
to the end, and stops the server. `Run` has each call's outcome, every probe, the server's log
and the failed steps it logged. A call counts as served when it got a 200 and its stream
ended with `data: [DONE]` (or its body had choices); a refusal is a 4xx. Nothing is judged
here: the checks and the notebook decide from the data.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field

import httpx

from labsupport import progress, wire
from labsupport.scenarios.device_side_assert import server
from labsupport.scenarios.device_side_assert.traffic import Call
from labsupport.serving.aio import run_sync

PROBE_PERIOD_S = 0.1
PROBE_TIMEOUT_S = 1.0  # a kubelet's timeoutSeconds: 1
TAIL_S = 2.0  # probing goes on this long after the last answer
_FAILED_STEP = re.compile(r"engine step failed; failing (\d+) request\(s\) \[([^\]]*)\]")


@wire.record
@dataclass
class Outcome:
    """What one call got back. Times in seconds since the run started."""

    id: str
    client: str
    stream: bool
    sent_s: float
    done_s: float
    status: int  # HTTP status (0: no answer: connection refused, reset or timed out)
    tokens: int  # tokens received
    finished: bool  # the stream ended with [DONE], or the plain answer had its choices
    error: str | None = None  # the error message the server sent, if any
    param: str | None = None  # the error's "param", if any

    @property
    def served(self) -> bool:
        return self.status == 200 and self.finished and self.error is None


@wire.record
@dataclass(frozen=True)
class Probe:
    t_s: float
    path: str
    status: int  # 0: no answer within PROBE_TIMEOUT_S
    latency_s: float


@wire.record
@dataclass
class Run:
    """One replay: outcomes in call order, probes in time order, the server's log."""

    outcomes: list[Outcome]
    probes: list[Probe]
    server_log: str
    bad_ids: list = field(default_factory=list)  # the calls that carry an out-of-range id
    duration_s: float = 0.0

    @property
    def good(self) -> int:
        return sum(o.id not in self.bad_ids for o in self.outcomes)

    @property
    def served_good(self) -> int:
        return sum(o.served for o in self.outcomes if o.id not in self.bad_ids)

    def failed_steps(self) -> list[list[str]]:
        """The request ids of every engine step the server logged as failed (gateway ids)."""
        steps = []
        for m in _FAILED_STEP.finditer(self.server_log):
            ids = [x.strip() for x in m.group(2).split(",") if x.strip()]
            steps.append([_gateway_id(x) for x in ids])
        return steps

    def first_failure_s(self) -> float | None:
        """When the first good call failed (its answer came back), if one did."""
        times = [o.done_s for o in self.outcomes if o.id not in self.bad_ids and not o.served]
        return min(times) if times else None

    def probe_series(self, path: str) -> list[Probe]:
        return [p for p in self.probes if p.path == path]


def _gateway_id(engine_id: str) -> str:
    """cmpl-req-0007-0 -> req-0007 (the engine's id is the gateway's, prefixed and indexed)."""
    m = re.fullmatch(r"cmpl-(.+)-\d+", engine_id)
    return m.group(1) if m else engine_id


async def _call(client: httpx.AsyncClient, url: str, call: Call, t0: float) -> Outcome:
    await asyncio.sleep(max(0.0, call.at_s - (time.monotonic() - t0)))
    sent = time.monotonic() - t0
    out = Outcome(call.id, call.client, call.stream, sent, sent, 0, 0, False)
    try:
        if not call.stream:
            r = await client.post(url, json=call.body)
            out.status = r.status_code
            is_json = r.headers.get("content-type", "").startswith("application/json")
            data = r.json() if is_json else {}
            _error_into(out, data)
            choices = data.get("choices") if isinstance(data, dict) else None
            out.finished = r.status_code == 200 and bool(choices)
            if out.finished:
                out.tokens = int(data.get("usage", {}).get("completion_tokens", 0))
        else:
            async with client.stream("POST", url, json=call.body) as r:
                out.status = r.status_code
                if r.status_code != 200:
                    raw = await r.aread()
                    try:
                        _error_into(out, json.loads(raw))
                    except ValueError:
                        out.error = raw.decode(errors="replace")[:300]
                else:
                    async for line in r.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            out.finished = True
                            break
                        event = json.loads(data)
                        if "error" in event:
                            _error_into(out, event)
                        elif (event.get("choices") or [{}])[0].get("text"):
                            out.tokens += 1
    except (httpx.HTTPError, ValueError) as exc:
        out.error = out.error or f"{type(exc).__name__}: {exc}"[:300]
    out.done_s = time.monotonic() - t0
    return out


def _error_into(out: Outcome, data) -> None:
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        out.error = str(error.get("message", ""))[:500]
        out.param = error.get("param") if isinstance(error.get("param"), str) else None
    elif error is not None:
        out.error = str(error)[:500]


async def _probe(client, base_url: str, paths, t0: float, stop: asyncio.Event, probes: list):
    while not stop.is_set():
        tick = time.monotonic()
        for path in paths:
            t_s = time.monotonic() - t0
            try:
                r = await client.get(base_url + path, timeout=PROBE_TIMEOUT_S)
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            probes.append(Probe(round(t_s, 4), path, status, time.monotonic() - t0 - t_s))
        await asyncio.sleep(max(0.0, PROBE_PERIOD_S - (time.monotonic() - tick)))


async def _replay(base_url: str, calls: list[Call], paths, bar) -> tuple[list, list, float]:
    limits = httpx.Limits(max_connections=len(calls) + 8)
    timeout = httpx.Timeout(30.0, connect=5.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        t0 = time.monotonic()
        stop, probes = asyncio.Event(), []
        prober = asyncio.ensure_future(_probe(client, base_url, paths, t0, stop, probes))

        async def one(call):
            out = await _call(client, base_url + "/v1/completions", call, t0)
            bar.update()
            return out

        outcomes = await asyncio.gather(*(one(c) for c in calls))
        await asyncio.sleep(TAIL_S)
        stop.set()
        await prober
        return list(outcomes), probes, time.monotonic() - t0


def run(
    calls: list[Call],
    *,
    check_request=None,
    device_alive=None,
    probe_livez: bool = False,
    bad_ids=(),
    label: str = "replay",
) -> Run:
    """Replay `calls` against a fresh deployed server (your functions: refs, or None)."""
    paths = ["/health"] + (["/livez"] if probe_livez else [])
    with server.serve(check_request, device_alive) as srv:
        with progress.bar(len(calls), label, unit="req") as bar:
            outcomes, probes, duration = run_sync(lambda: _replay(srv.base_url, calls, paths, bar))
        time.sleep(0.2)  # the server's last log lines
        log = srv.output
    return Run(outcomes, probes, log, list(bad_ids), duration)
