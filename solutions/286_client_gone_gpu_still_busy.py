# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 286 - Clients leave, the GPU keeps generating
#
# Users close the tab or press "Stop" after a few words, and the GPU stays as busy as at peak.
# You will reproduce it with real clients that really hang up, going through a real gateway to
# a real streaming server, find out from the gateway's log and the server's `/metrics` which
# layer lets the engine work for nobody and what it costs, fix the server's streaming code, and
# prove the fix. About 30 minutes; each workload takes a few seconds, each `check()` under a
# minute.

# %%
from labsupport import device, session
from labsupport.scenarios import client_gone_gpu_still_busy as scenario

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("286", seed=SEED)
variant = scenario.variant(SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="optional",
    stand_in="the tiny model decodes on the CPU (each engine step paced to at least 5 ms, like "
    "a GPU step); the gateway, the HTTP server and the clients' TCP hang-ups are the same",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV3 - chat-backend: TTFT p95 above SLO, KV cache near full off-peak** (21:40 UTC)
# >
# > | panel | value |
# > |---|---|
# > | `vllm:num_requests_running` | 180, flat |
# > | gateway: client connections to chat-backend | 40 |
# > | `vllm:kv_cache_usage_perc` | 0.93 |
# > | `vllm:num_requests_waiting` | 25 |
# > | gateway: status 499 (client closed request) | 62 % of chat completions |
# > | `rate(vllm:generation_tokens_total[5m])` | 41k tokens/s, as at the day's peak |
# > | GPU utilisation (DCGM) | 98 % |
# >
# > What changed this week: the web app got a "Stop generating" button and a 10 s client-side
# > timeout; the chat-backend shipped a release that reworked how it streams tokens; the
# > platform team moved the gateway to a new configuration; the default `max_tokens` went
# > from 512 to 2048.
#
# The GPU works as hard as at peak and the queue grows, yet users receive a fraction of the
# tokens. Who is the engine generating for, and which change let it?

# %% [markdown]
# ## 2. Reproduce
#
# The stack, for real, on this machine: clients -> **gateway** (a proxy with an access log,
# like nginx or an AI gateway) -> **chat-backend** (`srelab serve`: a tiny transformer with a
# paged KV cache and continuous batching behind vLLM's OpenAI API, in a subprocess, running
# the chat-backend's release) -> **engine**. This incident's clients:

# %%
import dataclasses

from labsupport import plots
from labsupport.scenarios.client_gone_gpu_still_busy import plots as timeline
from labsupport.scenarios.client_gone_gpu_still_busy import rounds

workload = variant.workload
if SCALE == "suite":  # the test suite's shorter run: shorter answers for the clients that leave
    workload = dataclasses.replace(workload, leaving_max_tokens=96)
print(workload.describe())
before = rounds.run_stack(rounds.RELEASE, workload, gateway=variant.gateway, label="incident")
print(before.describe())
_ = plots.show(timeline.timeline({"incident": before}))

# %% [markdown]
# The clients that left stopped reading after a few tokens and closed their connections; the
# ones that stayed were done soon after. The engine, though, kept as many requests running,
# their KV blocks growing, for another second or more: decode steps and KV cache spent on
# nobody. With `max_tokens=2048` and hundreds of users pressing Stop, that is the page.

# %% [markdown]
# ## 3. Diagnose
#
# Nothing failed: no error, no log line at the server. Each layer saw part of it. The round
# scraped the server's `/metrics` three times, and the gateway kept its access log:

# %%
from labsupport.serving.metrics import metric_value

NAMES = [
    ("vllm:num_requests_running", {}),
    ("srelab:http_requests_in_flight", {}),
    ("srelab:kv_cache_blocks_used", {}),
    ("vllm:generation_tokens_total", {}),
    ("vllm:request_success_total", {"finished_reason": "length"}),
    ("srelab:client_disconnects_total", {}),
    ("srelab:wasted_decode_steps_total", {}),
]
scrapes = {
    "before": before.metrics_before,
    "last client done": before.metrics_clients_left,
    "engine idle": before.metrics_idle,
}
print(f"{'/metrics':52s}" + "".join(f"{k:>18s}" for k in scrapes))
for name, labels in NAMES:
    shown = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    values = [metric_value(t, name, **labels) or 0.0 for t in scrapes.values()]
    print(f"{shown:52s}" + "".join(f"{v:18.0f}" for v in values))

print(f"\ngateway access log ({len(before.gateway_log)} responses)")
print(f"{'request':24s} {'status':>6s} {'tokens from server':>19s} {'tokens to client':>17s}")
for e in before.gateway_log:
    print(
        f"{e['request']:24s} {e['status']:6d} {e['tokens_from_upstream']:19d} "
        f"{e['tokens_to_client']:17d}"
    )

# %% [markdown]
# Read it like on-call would. Counters (`_total`) are cumulative since the server started:
# only their increase between two scrapes says anything about a window (`increase()` in
# PromQL). `srelab:client_disconnects_total` counts streams whose client went away before
# the response ended, *as the server saw it*; `srelab:wasted_decode_steps_total` counts tokens
# the engine computed for a request after the server had noted its client gone. The gateway's
# 499 means its client closed the connection before the response was complete; it logs the
# completion tokens it read from the server and those it wrote to the client. vLLM has no
# wasted-steps counter; there the signal is `vllm:num_requests_running` against the open
# streams your gateway reports, and generated against delivered tokens.
#
# **Exercise 1 (graded).** From two scrapes of the server and the gateway's log of the same
# window, say which layer lets the engine go on working for clients that left, how many
# clients left and how many tokens the engine generated for nobody. The check runs your
# function on written evidence and on real rounds of different shapes, at each layer.
# `hint("286", 1, "diagnose")` (up to 3) gives a hint and notes it in your transcript.

# %% tags=["exercise"]
from labsupport.serving.metrics import metric_value


def diagnose(metrics_before: str, metrics_after: str, gateway_log: list[dict]) -> dict:
    """What happened between two scrapes of the server's /metrics (Prometheus text), given
    the gateway's access log of that window (one dict per response: request, status,
    upstream_status, tokens_from_upstream, tokens_to_client, request_time_s).

    Return {"lost_at": ..., "clients_left": ..., "tokens_for_nobody": ...}:
    - clients_left: clients that closed their connection before their answer was complete;
    - tokens_for_nobody: tokens the engine generated in the window that no client received;
    - lost_at: the first layer that lets the engine go on working for a client that left,
      "gateway" or "server"; "nowhere" if none does (no client left, or each of their
      requests ended within a step or two of their leaving).
    `metric_value(text, name, **labels)` reads a sample (None when absent).
    """

    # BEGIN SOLUTION
    def gained(name, **labels):
        after = metric_value(metrics_after, name, **labels) or 0.0
        return after - (metric_value(metrics_before, name, **labels) or 0.0)

    completions = [e for e in gateway_log if e["request"].startswith("POST")]
    left = sum(e["status"] == 499 for e in completions)
    stayed = len(completions) - left
    received = sum(e["tokens_to_client"] for e in gateway_log)
    for_nobody = round(gained("vllm:generation_tokens_total") - received)
    ran_to_the_end = gained("vllm:request_success_total", finished_reason="length")
    if not left:
        lost_at = "nowhere"
    elif gained("srelab:client_disconnects_total") < left:
        lost_at = "gateway"  # the server never saw them go, it streamed to the gateway
    elif ran_to_the_end > stayed:
        lost_at = "server"  # it saw them go, and the engine still ran them to max_tokens
    else:
        lost_at = "nowhere"
    return {"lost_at": lost_at, "clients_left": left, "tokens_for_nobody": for_nobody}
    # END SOLUTION


# %%
found = diagnose(before.metrics_before, before.metrics_idle, before.gateway_log)
print(found)
print(f"per client that left: {found['tokens_for_nobody'] / max(1, found['clients_left']):.0f} "
      f"tokens, of the {workload.leaving_max_tokens} each asked for")  # fmt: skip

# %% [markdown]
# Grade the diagnosis (the fix checks fail until you write `stream_outputs` in section 4):

# %%
from labsupport import check

check("286")

# %% [markdown] tags=["reveal"]
# **What happened.** Every abandoned request ran to `max_tokens`: the engine generated for
# each client that left about `max_tokens - leave_after` tokens nobody received, and held its
# KV blocks all that time. Nothing in the stack told the engine the client was gone, and which
# layer dropped the news shows in the numbers of this run:

# %% tags=["reveal"]
gone = [e for e in before.gateway_log if e["status"] == 499]
seen = before.delta("srelab:client_disconnects_total")
print(
    f"gateway: {len(gone)} clients closed early; for them it read "
    f"{sum(e['tokens_from_upstream'] for e in gone)} tokens from the server and wrote "
    f"{sum(e['tokens_to_client'] for e in gone)}"
)
print(
    f"server: counted {seen:.0f} clients leaving; right after the last one it still served "
    f"{before.server_streams_after_clients_left} streams"
)
print(
    f"engine: {before.running_after_clients_left} requests still running then; "
    f"{before.delta('vllm:request_success_total', finished_reason='abort'):.0f} ended as "
    "aborted"
)

# %% [markdown] tags=["reveal"]
# - **The server let it go on** (the server's disconnect counter rose with the 499s, its open
#   streams fell to zero, yet the engine ran the requests to the end and none ended as
#   aborted): the chat-backend saw its clients leave and never told the engine. Its new stream
#   handler iterates the engine's outputs and nothing else; in vLLM, `AsyncLLM.generate()`
#   aborts the request when it is cancelled or closed, and the release's own generator lost
#   that. `srelab:wasted_decode_steps_total` agrees here.
# - **The gateway let it go on** (the server counted no disconnect and kept serving every
#   stream, while the gateway read whole answers from it after their clients had left): the
#   gateway's new configuration keeps reading the upstream response when its client aborts
#   (nginx `proxy_ignore_client_abort on`, or a gateway that buffers whole responses). The
#   server cannot abort what it does not know about, and its wasted-steps counter stays at
#   zero - the server's view alone would call this healthy.
#
# In both cases the fix has to reach the server: once the gateway passes the hang-up on, the
# server must act on it. That is section 4.

# %% [markdown]
# ## 4. Fix
#
# This is the chat-backend's stream handler as released: the server iterates it for every
# streamed response and turns each output into a server-sent event.

# %%
import inspect

from labsupport.scenarios.client_gone_gpu_still_busy import release

print(inspect.getsource(release.stream_outputs))

# %% [markdown] tags=["reveal"]
# How does a client's hang-up reach the handler? The server (Starlette's `StreamingResponse`
# under uvicorn) iterates the generator in a task and, beside it, listens for the ASGI
# `http.disconnect` message. When the client goes away:
#
# - the task is **cancelled**: `asyncio.CancelledError` is raised inside the generator at the
#   `await` where it waits for the engine's next output (the usual case: tokens take time);
# - or, if the generator was paused at its `yield` when the server stopped iterating (and on
#   ASGI servers that advertise spec 2.4, where Starlette only notices a disconnect when a
#   write fails), the generator is **closed**: `GeneratorExit` is raised at the `yield`
#   (Python does the same when an unfinished async generator is garbage-collected).
#
# The release's handler lets both exceptions pass, and the engine never hears of it. vLLM's
# `AsyncLLM.generate()` (`vllm/v1/engine/async_llm.py`) is the reference: its loop over the
# request's output queue sits in `try: ... except (asyncio.CancelledError, GeneratorExit):
# await self.abort(request_id, internal=True); raise`. The abort reaches the engine core,
# whose scheduler drops the request and frees its KV blocks at the next step.

# %% [markdown]
# The handle gives you: `handle.stream()` (the engine's outputs, ending after the one with
# `finished=True`), `handle.abort()` (the engine drops the request and frees its KV blocks at
# its next step; a no-op for a finished request), `handle.finished`.
#
# **Exercise 2 (graded).** Write the stream handler the server should have had.
# `hint("286", 1, "stream_outputs")` if you want one.

# %% tags=["exercise"]
import asyncio


async def stream_outputs(handle):
    """Yield the engine's outputs for one request, as the server streams them to its client.

    When the client goes away the server stops reading this generator: it cancels the task
    that iterates it while it waits for the next output, or it closes it between two outputs.
    On both paths the engine must stop working for this request at once (`handle.abort()`),
    and the server's exception must go on. A client that stays, however slowly it reads,
    must get every output, the final one included.
    """
    # BEGIN SOLUTION
    try:
        async for out in handle.stream():
            yield out
    except (asyncio.CancelledError, GeneratorExit):
        handle.abort()  # as AsyncLLM.generate(): the engine drops it, its KV blocks are freed
        raise
    # END SOLUTION


# %% [markdown]
# Try it before the grader does: `stream_probe` drives a handler against a real engine in this
# kernel, stopping the way a server stops (`cancel`, `close`) or reading to the end slowly
# (`complete`), and watches the engine for half a second after the consumer left.

# %%
from labsupport.scenarios.client_gone_gpu_still_busy import stream_probe

handlers = {"release": release.stream_outputs, "yours": stream_outputs}
if SCALE == "suite":  # the test suite's shorter run: the checks probe yours anyway
    handlers = {}
print(f"{'mode':9s} {'handler':8s} tokens engine ended tokens after left  KV blocks held")
for name, handler in handlers.items():
    for mode, p in stream_probe.probe_all(handler).items():
        ended = p.engine_reason or "running"
        print(
            f"{mode:9s} {name:8s} {p.tokens:6d} {ended:>12s} {p.tokens_after_left:17d} "
            f"{p.kv_blocks_used:15d}"
        )

# %%
check("286")

# %% [markdown]
# ## 5. Verify
#
# The same clients against a fresh server running your handler, through the gateway as it
# should be configured (it closes its connection to the server when its client closes, which
# is nginx's default), next to the incident measured in section 2.

# %%
after = rounds.run_stack(stream_outputs, workload, gateway="close", label="your fix")
print(before.describe())
print(after.describe())
_ = plots.show(timeline.timeline({"incident": before, "your fix": after}))

# %% [markdown]
# The headline is what the engine spends per token a client actually receives: 1.0 would be
# no waste at all. (Tokens for nobody alone would go to zero, and a ratio to zero says
# nothing.)

# %%
from labsupport import headline

runs = {"incident": before, "your fix": after}
_ = plots.show(
    plots.before_after(
        {label: run.generated_per_delivered for label, run in runs.items()},
        unit="tokens",
        title=f"tokens generated per token a client received ({after.device})",
    )
)
_ = headline.record(
    "286",
    metric="tokens generated per token delivered",
    before=before.generated_per_delivered,
    after=after.generated_per_delivered,
    unit="tokens",
    seed=SEED,
    device=after.device,
    workload=workload.describe(),
    generated_before=before.generated_tokens,
    generated_after=after.generated_tokens,
    delivered_before=before.delivered_tokens,
    delivered_after=after.delivered_tokens,
    busy_after_clients_left_s_before=before.busy_after_clients_left_s,
    busy_after_clients_left_s_after=after.busy_after_clients_left_s,
    kv_blocks_after_clients_left_before=before.kv_blocks_after_clients_left,
    kv_blocks_after_clients_left_after=after.kv_blocks_after_clients_left,
)

# %% [markdown]
# ## 6. Debrief
#
# **The interview question.** "A client disconnects in the middle of a generation. Is the
# backend's inference cancelled automatically, or does it run to the end? How much does it
# waste?"
#
# **A model answer.** Only if every layer passes the disconnect down. The engine does not know
# about HTTP: it decodes each request until `max_tokens` or a stop token unless someone aborts
# it, and an abandoned request keeps its batch slot and its KV blocks all that time - with long
# `max_tokens`, a Stop button and impatient users, that is a large share of the GPU (here
# several times more tokens generated than delivered). In a Python server the disconnect
# arrives as `asyncio.CancelledError` in the task that streams the response, or as
# `GeneratorExit` when the streaming generator is closed; the code that owns the engine request
# must catch both, abort the request (vLLM V1: `AsyncLLM.abort()`, which `AsyncLLM.generate()`
# calls itself) and re-raise. Non-streaming requests need the handler raced against a
# disconnect listener (vLLM's `@with_cancellation`). Every proxy on the path must close its
# upstream connection when its client goes, or the server never learns. Then verify end to
# end: `vllm:num_requests_running` must follow the gateway's open client connections, KV
# usage must drop when clients leave, generated tokens must track delivered ones.
#
# **Where the classic answer is outdated or incomplete.**
# - *"Call `engine.abort_request(request_id)`"* - that is the synchronous `LLMEngine` method,
#   for offline batches. An OpenAI-style server on vLLM V1 iterates `AsyncLLM.generate()`,
#   which already calls `AsyncLLM.abort()` on `CancelledError`/`GeneratorExit`. The work is
#   letting the cancellation reach it: do not consume it in a task that outlives the HTTP
#   request, do not swallow the exception, do not put a layer in between that keeps reading.
# - *"Poll `await request.is_disconnected()` between tokens"* - vLLM's `with_cancellation`
#   docstring says it "does not work with middleware"; it also notices only at the next token.
#   Listen for `http.disconnect` instead, as Starlette's `StreamingResponse` does.
# - *"Catch `asyncio.CancelledError`"* - half of it: the `GeneratorExit` path exists too, and
#   `except Exception` catches neither (both are `BaseException`s since Python 3.8).
# - **A proxy can hide the disconnect entirely.** nginx with `proxy_ignore_client_abort on`
#   (the default is off), or a gateway that keeps reading or buffering the upstream response,
#   never closes its connection to the server: the server's fix never runs, and the server's
#   own metrics look healthy. Only the gateway's log (499s, bytes or tokens read from upstream
#   against bytes sent) shows it. It happens by accident (a proxy that never links its
#   client's connection to the upstream request: better-ccflare until its PR #360; Apache
#   APISIX's ai-proxy only started aborting the upstream read on a client disconnect in
#   April 2026, PR #13254) and on purpose (a gateway that bills by usage drains the answer to
#   read the final token count: sub2api's Kimi path, where PR #6482 proposes an opt-in switch
#   to stop).
# - **Aborting is not freeing.** The abort must release the request's KV blocks; an engine or
#   wrapper that drops the request but keeps its blocks leaks a little on every Stop press -
#   lab 279's "slower every day".
#
# **Follow-ups an interviewer asks.**
# 1. The client disconnects during a long prefill. When does the abort take effect? (At the
#    next step boundary: the current forward pass finishes.)
# 2. How do you alert on this? (Engine running requests minus the gateway's open client
#    connections; generated vs delivered token rates; 499 ratio at the gateway; a gateway
#    reading far more from upstream than it sends to 499 clients.)
# 3. What about retries? A client that times out at 10 s and retries doubles the load unless
#    the first request is aborted - and idempotency keys let you reattach instead.
# 4. With `n > 1` or beam search, what must an abort cover? (Every child request: vLLM's
#    `abort()` expands the parent into its children.)
# 5. Why not just lower `max_tokens`? (It caps the damage, it does not remove it, and it
#    truncates legitimate long answers.)
#
# **References.** vLLM `AsyncLLM.generate` and `abort` (read at commit 00080ee):
# https://github.com/vllm-project/vllm/blob/main/vllm/v1/engine/async_llm.py ·
# `with_cancellation` / `listen_for_disconnect`:
# https://github.com/vllm-project/vllm/blob/main/vllm/entrypoints/utils.py ·
# Starlette `StreamingResponse`: https://www.starlette.io/responses/#streamingresponse ·
# Python: `asyncio.CancelledError` is a `BaseException` subclass since 3.8
# (https://docs.python.org/3/library/asyncio-exceptions.html), `aclose()` raises
# `GeneratorExit` at the paused `yield`
# (https://docs.python.org/3/reference/expressions.html#agen.aclose) ·
# nginx `proxy_ignore_client_abort`:
# https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_ignore_client_abort ·
# APISIX ai-proxy, abort upstream read on client disconnect:
# https://github.com/apache/apisix/pull/13254 ·
# better-ccflare, abort the upstream fetch when the client disconnects:
# https://github.com/tombii/better-ccflare/pull/360 ·
# sub2api, cancel the upstream on client disconnect (opt-in): https://github.com/Wei-Shaw/sub2api/pull/6482

# %% [markdown] tags=["reveal"]
# Your fix behind a gateway that reads every answer to its end (`proxy_ignore_client_abort
# on`): the server sees readers to the end, and your handler never runs its abort.

# %% tags=["reveal"]
if SCALE == "full":
    hidden = rounds.run_stack(
        stream_outputs, workload, gateway="read", label="fix, gateway reads on"
    )
    print(hidden.describe())
    print(
        f"the server counted {hidden.delta('srelab:client_disconnects_total'):.0f} clients "
        "leaving: to it, the gateway is a client that reads every token"
    )
