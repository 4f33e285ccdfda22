"""Clients that hang up mid-stream, and what the engine does for them afterwards (lab 286).

    >>> from labsupport.serving import disconnects
    >>> run = disconnects.run_workload(disconnects.naive_stream_outputs, label="no cancel")
    >>> run.disconnects, run.running_after_clients_left, run.wasted_steps > 1000
    (8, 8, True)

A round runs against the real server (a subprocess, real HTTP, real TCP hang-ups): `leaving`
clients stream a long completion and close the connection after a few tokens, while `staying`
clients read a short one to the end. The server streams every response through the given
stream handler (`srelab serve --stream-handler`): `fn(handle)`, an async generator of the
handle's `TokenOutput`s, which owns cancellation, as vLLM's `AsyncLLM.generate()` does.
`naive_stream_outputs` is the bug: it never aborts, so the engine decodes every abandoned request
to `max_tokens`. A round scrapes `/metrics` before, right after the last client was done, and
once the engine is idle, and samples `/debug/heartbeat` throughout (for the plots).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import httpx

from labsupport.serving.aio import run_sync
from labsupport.serving.buffering_proxy import ignore_client_abort_proxy
from labsupport.serving.launcher import ServerProcess, serve_subprocess
from labsupport.serving.loadgen import RequestResult, run_load
from labsupport.serving.metrics import metric_value


async def naive_stream_outputs(handle):
    """Stream the engine's outputs for one request, and nothing else (the incident's code)."""
    async for out in handle.stream():  # BUG: nothing aborts the request when the client leaves
        yield out


@dataclass(frozen=True)
class Workload:
    leaving: int = 8  # clients that hang up after `leave_after_tokens`
    leave_after_tokens: int = 4
    leaving_max_tokens: int = 256
    staying: int = 4  # clients that read their whole (shorter) completion
    staying_max_tokens: int = 32
    prompt: str = "Write a long story about a cat."
    min_step_ms: float = 5.0  # each engine step takes at least this long, on CPU or GPU
    idle_timeout_s: float = 60.0  # how long to wait for the engine to run dry
    abort_grace_s: float = 0.3  # the "clients left" scrape waits up to this for the engine


@dataclass
class DisconnectRun:
    """One round: the /metrics scrapes, what each client got, and the engine's timeline."""

    label: str
    device: str
    workload: Workload
    metrics_before: str
    metrics_clients_left: str  # scraped once the server saw every client go (plus one settle)
    metrics_idle: str  # scraped once the engine had nothing left to run
    leaving: list[RequestResult]
    staying: list[RequestResult]
    clients_left_s: float  # when the last client was done, since the round began
    busy_after_clients_left_s: float  # how long the engine kept running after that
    samples: list[tuple] = field(default_factory=list)  # (t_s, running, waiting, http, blocks)

    def delta(self, name: str, *, until: str = "idle", **labels: str) -> float:
        """How much counter `name` grew from the start of the round to `until` (idle|left)."""
        after = self.metrics_idle if until == "idle" else self.metrics_clients_left
        return (metric_value(after, name, **labels) or 0.0) - (
            metric_value(self.metrics_before, name, **labels) or 0.0
        )

    @property
    def wasted_steps(self) -> int:
        return int(self.delta("srelab:wasted_decode_steps_total"))

    @property
    def disconnects(self) -> int:
        return int(self.delta("srelab:client_disconnects_total"))

    @property
    def aborted(self) -> int:
        return int(self.delta("vllm:request_success_total", finished_reason="abort"))

    @property
    def engine_steps(self) -> int:
        return int(self.delta("srelab:engine_steps_total"))

    @property
    def generated_tokens(self) -> int:
        return int(self.delta("vllm:generation_tokens_total"))

    @property
    def delivered_tokens(self) -> int:
        return sum(r.tokens for r in self.leaving + self.staying)

    @property
    def generated_per_delivered(self) -> float:
        """Tokens the engine computed per token a client received (1.0: no waste)."""
        return self.generated_tokens / max(1, self.delivered_tokens)

    @property
    def running_after_clients_left(self) -> int:
        return int(metric_value(self.metrics_clients_left, "vllm:num_requests_running") or 0)

    @property
    def kv_blocks_after_clients_left(self) -> int:
        return int(metric_value(self.metrics_clients_left, "srelab:kv_cache_blocks_used") or 0)

    @property
    def kv_blocks_idle(self) -> int:
        return int(metric_value(self.metrics_idle, "srelab:kv_cache_blocks_used") or 0)

    @property
    def complete_streams(self) -> int:
        """Staying clients that got [DONE] and every token they asked for."""
        want = self.workload.staying_max_tokens
        return sum(r.status == "ok" and r.tokens == want for r in self.staying)

    def describe(self) -> str:
        return (
            f"{self.label}: the server saw {self.disconnects} clients leave, "
            f"{self.wasted_steps} decode steps for nobody; right after the last client: "
            f"{self.running_after_clients_left} requests running, "
            f"{self.kv_blocks_after_clients_left} KV blocks held; engine busy "
            f"{self.busy_after_clients_left_s:.2f} s more; {self.generated_tokens} tokens "
            f"generated for {self.delivered_tokens} delivered "
            f"({self.generated_per_delivered:.2f} per delivered); "
            f"{self.complete_streams}/{len(self.staying)} staying streams complete"
        )

    def problems(self) -> list[str]:
        """What a correct cancellation would not show, one sentence each (empty: none)."""
        w, out = self.workload, []
        gone = sum(r.status == "client_disconnect" for r in self.leaving)
        if gone != w.leaving:
            out.append(
                f"only {gone} of {w.leaving} leaving clients got their {w.leave_after_tokens} "
                f"tokens and hung up as planned (statuses: {[r.status for r in self.leaving]})"
            )
        elif self.disconnects != w.leaving:
            out.append(
                f"the server counted {self.disconnects} of the {w.leaving} disconnects: for the "
                "others the stream went on to its end as if someone read it. Does the handler end "
                "normally, without an exception, when its client leaves?"
            )
        if self.complete_streams != len(self.staying):
            got = [(r.status, r.tokens) for r in self.staying]
            out.append(
                f"only {self.complete_streams} of {len(self.staying)} clients that stayed "
                f"connected got all {w.staying_max_tokens} tokens and [DONE] (status, tokens: "
                f"{got}): abort only when the consumer goes away, and yield every output"
            )
        if self.running_after_clients_left or self.kv_blocks_after_clients_left:
            out.append(
                f"after the last client left the engine still ran "
                f"{self.running_after_clients_left} requests holding "
                f"{self.kv_blocks_after_clients_left} KV blocks"
            )
        if self.wasted_steps > w.leaving:
            out.append(
                f"{self.wasted_steps} decode steps were computed for clients that had left "
                f"({self.wasted_steps / max(1, self.disconnects):.0f} per disconnect)"
            )
        if self.aborted != w.leaving:
            out.append(f"{self.aborted} requests ended as aborted, {w.leaving} clients left")
        return out


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


async def _sample(client, samples: list, t0: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        hb = (await client.get("/debug/heartbeat")).json()
        samples.append(
            (
                time.perf_counter() - t0,
                hb["num_running"],
                hb["num_waiting"],
                hb["http_in_flight"],
                hb["kv_blocks_used"],
            )
        )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)


async def _round(
    base_url: str, w: Workload, label: str, device: str, via: str | None
) -> DisconnectRun:
    timeout = httpx.Timeout(30.0)
    clients_url = via or base_url
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False) as client:
        await _wait_for(client, lambda hb: hb["pending"] == 0, w.idle_timeout_s, "engine idle")
        before = (await client.get("/metrics")).text
        samples: list = []
        stop = asyncio.Event()
        t0 = time.perf_counter()
        sampler = asyncio.ensure_future(_sample(client, samples, t0, stop))
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
            if via is None:  # behind a proxy the server may never learn that clients left
                await _wait_for(client, lambda hb: hb["http_in_flight"] == 0, 10.0, "no client")
            with contextlib.suppress(TimeoutError):  # aborts land at the next step boundary
                await _wait_for(client, lambda hb: hb["pending"] == 0, w.abort_grace_s, "")
            left = (await client.get("/metrics")).text
            hb = await _wait_for(client, lambda hb: hb["pending"] == 0, w.idle_timeout_s, "idle")
            t_last_step = time.perf_counter() - (hb["last_step_age_s"] or 0.0)
        finally:
            stop.set()
            await sampler
        idle = (await client.get("/metrics")).text
    leaving = reports[0].results if w.leaving else []
    staying = reports[-1].results if w.staying else []
    return DisconnectRun(
        label, device, w, before, left, idle, leaving, staying,
        clients_left_s=t_left - t0, busy_after_clients_left_s=max(0.0, t_last_step - t_left),
        samples=samples,
    )  # fmt: skip


def run_round(
    srv: ServerProcess,
    workload: Workload = Workload(),
    *,
    label: str = "",
    via: str | None = None,
) -> DisconnectRun:
    """One round of leaving and staying clients against a running server.

    via: a proxy's base URL for the clients (the scrapes still go to the server itself).
    """
    device = str(srv.startup.get("device", "?"))
    return run_sync(lambda: _round(srv.base_url, workload, label, device, via))


def run_workload(
    stream_handler=None,
    workload: Workload = Workload(),
    *,
    label: str = "",
    behind_proxy: bool = False,
) -> DisconnectRun:
    """Start a server with `stream_handler`, run one round, stop the server.

    behind_proxy: the clients go through a proxy that ignores client aborts (nginx's
    `proxy_ignore_client_abort on`), see `buffering_proxy`.
    """
    with serve(stream_handler, min_step_ms=workload.min_step_ms) as srv:
        if not behind_proxy:
            return run_round(srv, workload, label=label)
        with ignore_client_abort_proxy(srv.base_url) as url:
            return run_round(srv, workload, label=label, via=url)


def compare(fixed_stream_outputs, workload: Workload = Workload()) -> dict[str, DisconnectRun]:
    """The naive handler and `fixed_stream_outputs`, one after the other, same workload."""
    return {
        "no cancel": run_workload(naive_stream_outputs, workload, label="no cancel"),
        "cancel on disconnect": run_workload(
            fixed_stream_outputs, workload, label="cancel on disconnect"
        ),
    }
