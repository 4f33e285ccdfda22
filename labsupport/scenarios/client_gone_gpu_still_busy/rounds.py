"""Chat clients through the gateway to the chat-backend, measured at every layer (lab 286).

    >>> from labsupport.scenarios.client_gone_gpu_still_busy import rounds
    >>> w = rounds.Workload(leaving=2, leave_after_tokens=3, leaving_max_tokens=40, staying=1,
    ...                     staying_max_tokens=8)
    >>> r = rounds.run_stack(rounds.RELEASE, w, gateway="close", label="release")
    >>> [c.tokens for c in r.leaving], [e["status"] for e in r.gateway_log].count(499)
    ([3, 3], 2)
    >>> r.generated_tokens, r.delivered_tokens
    (88, 14)

A round runs against the real server (a subprocess, real HTTP, real TCP hang-ups), through the
gateway (`gateway.py`) or straight to the server: `leaving` clients stream a long completion
and close the connection after `leave_after_tokens` tokens (the Stop button, a closed tab),
while `staying` clients read a short one to the end. The server streams every response
through a stream handler (`srelab serve --stream-handler`): `fn(handle)`, an async generator
of the handle's `TokenOutput`s. `RELEASE` is the chat-backend's current one.

A round scrapes the server's `/metrics` before, right after the last client was done, and once
the engine has nothing left to run; it keeps the gateway's access log, what each client got,
and samples the engine, the server and the gateway throughout (for the plots). It reports raw
measurements only: what they mean is the lab's question.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import httpx

from labsupport import progress, wire
from labsupport.scenarios.client_gone_gpu_still_busy.gateway import gateway as run_gateway
from labsupport.serving.aio import run_sync
from labsupport.serving.launcher import ServerProcess, serve_subprocess
from labsupport.serving.loadgen import run_load
from labsupport.serving.metrics import metric_value

RELEASE = "labsupport.scenarios.client_gone_gpu_still_busy.release:stream_outputs"
SERVER_START_S = 3.5  # about how long a server takes to listen on the 2-core machine


@wire.record
@dataclass(frozen=True)
class Workload:
    leaving: int = 8  # clients that close the connection after `leave_after_tokens`
    leave_after_tokens: int = 4
    leaving_max_tokens: int = 256
    staying: int = 4  # clients that read their whole (shorter) completion
    staying_max_tokens: int = 32
    prompt: str = "Write a long story about a cat."
    min_step_ms: float = 5.0  # each engine step takes at least this long, on CPU or GPU
    idle_timeout_s: float = 60.0  # how long to wait for the engine to run dry
    notice_s: float = 1.0  # after the last client, wait up to this for the server's streams to end
    settle_s: float = 0.3  # then up to this for the engine to run dry, before the "left" scrape

    def describe(self) -> str:
        out = (
            f"{self.leaving} clients ask for {self.leaving_max_tokens} tokens and leave after "
            f"{self.leave_after_tokens}"
        )
        if self.staying:
            out += f"; {self.staying} ask for {self.staying_max_tokens} tokens and read them all"
        return out

    def expected_s(self) -> float:
        """About how long a round takes when nothing stops the engine early."""
        steps = max(self.leaving_max_tokens, self.staying_max_tokens)
        return 0.5 + steps * self.min_step_ms / 1000 * 1.6


@wire.record
@dataclass
class Client:
    """What one client got: `ok` ([DONE] came), `client_disconnect` (it left on purpose), ..."""

    status: str
    tokens: int
    http_status: int | None = None
    error: str | None = None


@wire.record
@dataclass
class Round:
    """One round: the server's scrapes, the gateway's log, the clients, the timeline."""

    label: str
    device: str
    workload: Workload
    gateway: str  # the gateway's on_client_close ("close" | "read"), "" when clients go direct
    metrics_before: str
    metrics_clients_left: str  # scraped once the last client was done (plus a short settle)
    metrics_idle: str  # scraped once the engine had nothing left to run
    gateway_log: list  # the gateway's access log (dicts), [] when clients go direct
    leaving: list  # Client, for the clients that planned to leave
    staying: list  # Client, for the clients that planned to read everything
    clients_left_s: float  # when the last client was done, since the round began
    busy_after_clients_left_s: float  # how long the engine kept stepping after that
    # (t_s, engine running, engine waiting, server streams, KV blocks, gateway clients)
    samples: list = field(default_factory=list)

    def delta(self, name: str, *, until: str = "idle", **labels: str) -> float:
        """How much counter `name` grew from the start of the round to `until` (idle|left)."""
        after = self.metrics_idle if until == "idle" else self.metrics_clients_left
        return (metric_value(after, name, **labels) or 0.0) - (
            metric_value(self.metrics_before, name, **labels) or 0.0
        )

    def gauge(self, name: str, *, at: str = "left") -> float:
        """A gauge in the scrape `at` (left: right after the last client | idle | before)."""
        text = {"left": self.metrics_clients_left, "idle": self.metrics_idle}.get(
            at, self.metrics_before
        )
        return metric_value(text, name) or 0.0

    @property
    def generated_tokens(self) -> int:
        return int(self.delta("vllm:generation_tokens_total"))

    @property
    def delivered_tokens(self) -> int:
        """Tokens the clients themselves received."""
        return sum(c.tokens for c in self.leaving + self.staying)

    @property
    def generated_per_delivered(self) -> float:
        """Tokens the engine computed per token a client received (1.0: nothing for nobody)."""
        return self.generated_tokens / max(1, self.delivered_tokens)

    @property
    def running_after_clients_left(self) -> int:
        return int(self.gauge("vllm:num_requests_running"))

    @property
    def server_streams_after_clients_left(self) -> int:
        return int(self.gauge("srelab:http_requests_in_flight"))

    @property
    def kv_blocks_after_clients_left(self) -> int:
        return int(self.gauge("srelab:kv_cache_blocks_used"))

    @property
    def complete_streams(self) -> int:
        """Staying clients that got [DONE] and every token they asked for."""
        want = self.workload.staying_max_tokens
        return sum(c.status == "ok" and c.tokens == want for c in self.staying)

    def describe(self) -> str:
        w = self.workload
        left = sum(c.status == "client_disconnect" for c in self.leaving)
        return (
            f"{self.label}: {left} clients left after {w.leave_after_tokens} tokens and "
            f"{self.complete_streams}/{len(self.staying)} read to the end by "
            f"{self.clients_left_s:.2f} s; right after the last one the engine ran "
            f"{self.running_after_clients_left} requests ({self.kv_blocks_after_clients_left} "
            f"KV blocks) and kept stepping {self.busy_after_clients_left_s:.2f} s more; "
            f"{self.generated_tokens} tokens generated for {self.delivered_tokens} received "
            f"({self.generated_per_delivered:.1f} per token received)"
        )


@contextlib.contextmanager
def serve(stream_handler=None, *, min_step_ms: float = 5.0, echo: bool = False):
    """The server as a subprocess, streaming through `stream_handler` (None: built-in path)."""
    with serve_subprocess(
        "--min-step-ms", str(min_step_ms), stream_handler=stream_handler, echo=echo
    ) as srv:
        yield srv


async def _wait_for(client: httpx.AsyncClient, cond, timeout_s: float, what: str) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        hb = (await client.get("/debug/heartbeat")).json()
        if cond(hb):
            return hb
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:g} s: {hb}")
        await asyncio.sleep(0.01)


async def _sample(client, gw, samples: list, t0: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        hb = (await client.get("/debug/heartbeat")).json()
        samples.append(
            (
                round(time.perf_counter() - t0, 4),
                hb["num_running"],
                hb["num_waiting"],
                hb["http_in_flight"],
                hb["kv_blocks_used"],
                gw.clients_open if gw is not None else None,
            )
        )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)


def _client(r) -> Client:
    return Client(r.status, r.tokens, r.http_status, r.error)


async def _round(srv: ServerProcess, w: Workload, label: str, gw) -> Round:
    timeout = httpx.Timeout(30.0)
    device = str(srv.startup.get("device", "?"))
    clients_url = gw.url if gw is not None else srv.base_url
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=timeout, trust_env=False) as client:
        await _wait_for(client, lambda hb: hb["pending"] == 0, w.idle_timeout_s, "engine idle")
        log_start = len(gw.log) if gw is not None else 0
        before = (await client.get("/metrics")).text
        samples: list = []
        stop = asyncio.Event()
        t0 = time.perf_counter()
        sampler = asyncio.ensure_future(_sample(client, gw, samples, t0, stop))
        common = dict(prompt=w.prompt, temperature=0.0, request_timeout_s=60.0)
        loads = []
        if w.leaving:
            loads.append(
                run_load(
                    clients_url,
                    num_requests=w.leaving,
                    concurrency=w.leaving,
                    max_tokens=w.leaving_max_tokens,
                    disconnect_after_tokens=w.leave_after_tokens,
                    **common,
                )
            )
        if w.staying:
            loads.append(
                run_load(
                    clients_url,
                    num_requests=w.staying,
                    concurrency=w.staying,
                    max_tokens=w.staying_max_tokens,
                    **common,
                )
            )
        try:
            reports = await asyncio.gather(*loads)
            t_left = time.perf_counter()
            if gw is None or gw.on_client_close == "close":  # else the server cannot see it
                with contextlib.suppress(TimeoutError):  # it sees a hang-up a moment later
                    await _wait_for(client, lambda hb: hb["http_in_flight"] == 0, w.notice_s, "")
            with contextlib.suppress(TimeoutError):  # work stops at a step boundary, if at all
                await _wait_for(client, lambda hb: hb["pending"] == 0, w.settle_s, "")
            left = (await client.get("/metrics")).text
            hb = await _wait_for(client, lambda hb: hb["pending"] == 0, w.idle_timeout_s, "idle")
            t_last_step = time.perf_counter() - (hb["last_step_age_s"] or 0.0)
            await _wait_for(client, lambda hb: hb["http_in_flight"] == 0, 10.0, "no stream")
            if gw is not None:  # the gateway logs a response once its last byte went through
                deadline = time.monotonic() + 5.0
                while any("_started" in e for e in gw.log[log_start:]):
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            await sampler
        idle = (await client.get("/metrics")).text
    log = (
        [{k: v for k, v in e.items() if not k.startswith("_")} for e in gw.log[log_start:]]
        if gw is not None
        else []
    )
    leaving = [_client(r) for r in reports[0].results] if w.leaving else []
    staying = [_client(r) for r in reports[-1].results] if w.staying else []
    return Round(
        label, device, w, gw.on_client_close if gw is not None else "", before, left, idle, log,
        leaving, staying, clients_left_s=round(t_left - t0, 4),
        busy_after_clients_left_s=round(max(0.0, t_last_step - t_left), 4), samples=samples,
    )  # fmt: skip


def run_round(
    srv: ServerProcess, workload: Workload = Workload(), *, label: str = "", gateway: str = ""
) -> Round:
    """One round against a running server; gateway: "close" | "read" in front, "" for none."""
    if not gateway:
        return run_sync(lambda: _round(srv, workload, label, None))
    with run_gateway(srv.base_url, on_client_close=gateway) as gw:
        return run_sync(lambda: _round(srv, workload, label, gw))


def run_stack(
    stream_handler=RELEASE,
    workload: Workload = Workload(),
    *,
    gateway: str = "close",
    label: str = "",
    show_progress: bool = True,
) -> Round:
    """Start a server streaming through `stream_handler`, run one round, stop the server.

    gateway: the gateway's `on_client_close` ("close" | "read"), or "" to go straight to the
    server. A learner's handler (an exercise reference, a notebook function) makes the server
    run contained (`srelab serve` re-executes itself under `labsupport.contain`); the clients,
    the gateway and the scrapes stay in this process.
    """
    expected_s = SERVER_START_S + workload.expected_s()
    with progress.timed(expected_s, label or "round", disable=None if show_progress else True):
        with serve(stream_handler, min_step_ms=workload.min_step_ms) as srv:
            return run_round(srv, workload, label=label, gateway=gateway)
