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
# You will reproduce it against a real streaming server with clients that really hang up, find
# the work done for nobody in `/metrics`, write the cancellation path the server is missing,
# and prove the fix - then see how a proxy in front can undo it. About 20 minutes; the
# workloads take a few seconds each, each `check()` about 15 s.

# %%
from labsupport import device

_ = device.banner(
    gpu="optional",
    stand_in="the tiny model decodes on the CPU (each engine step paced to at least 5 ms, like "
    "a GPU step); the HTTP server, the TCP hang-ups and the cancellation path are the same",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV3 - chat-backend: TTFT p95 above SLO, KV cache near full off-peak** (21:40 UTC)
# >
# > | panel | value |
# > |---|---|
# > | `vllm:num_requests_running` | 180, flat |
# > | gateway: open streams to chat-backend | 40 |
# > | `vllm:kv_cache_usage_perc` | 0.93 |
# > | `vllm:num_requests_waiting` | 25 |
# > | gateway: status 499 (client closed request) | 62 % of chat completions |
# > | `rate(vllm:generation_tokens_total[5m])` | 41k tokens/s, as at the day's peak |
# > | GPU utilisation (DCGM) | 98 % |
# >
# > What changed: the web app got a "Stop generating" button and a 10 s client-side timeout;
# > last week's chat-backend release streams tokens through its own async generator instead of
# > the engine's; the default `max_tokens` went from 512 to 2048.
#
# The GPU works as hard as at peak and the queue grows, yet users receive a fraction of the
# tokens. Who is the engine generating for?

# %% [markdown]
# ## 2. Reproduce
#
# `srelab serve` runs a real engine (a tiny transformer, paged KV cache, continuous batching)
# behind an OpenAI-compatible API, in a subprocess. Like the chat-backend, it streams each
# response through a *stream handler*: an async generator that receives the request's
# `handle` and yields the engine's outputs; the HTTP layer turns each into a server-sent event.
# This is the incident's handler:

# %%
import inspect

from labsupport.serving import disconnect_plots, disconnects

print(inspect.getsource(disconnects.naive_stream_outputs))

# %% [markdown]
# The workload (`disconnects.Workload`): 8 clients ask for 256 tokens, read 4 and hang up (the
# Stop button: the TCP connection is closed mid-stream), while 4 clients ask for 32 tokens and
# read them all. `run_workload` scrapes `/metrics` before the round, right after the last client
# is done, and once the engine has nothing left to run; it samples the engine's heartbeat
# throughout.

# %%
from labsupport import plots

workload = disconnects.Workload()
before = disconnects.run_workload(disconnects.naive_stream_outputs, workload, label="no cancel")
print(before.describe())
_ = plots.show(disconnect_plots.timeline({"no cancel": before}))

# %% [markdown]
# The staying clients were done after about 0.3 s. The 8 clients that left stopped reading
# after 4 tokens, yet the engine kept 8 requests running, their KV blocks growing, until each
# reached its 256 tokens: more than a second of decode steps, and the KV cache, spent on
# nobody. With `max_tokens=2048` and hundreds of users pressing Stop, that is the page.

# %% [markdown]
# ## 3. Diagnose
#
# Nothing failed: no error, no log line. The evidence is in `/metrics`, if you compare what
# the engine runs with what the HTTP side serves. Here are the three scrapes of that round:

# %%
from labsupport.serving.metrics import metric_value

NAMES = [
    "vllm:num_requests_running",
    "srelab:http_requests_in_flight",
    "srelab:kv_cache_blocks_used",
    "vllm:generation_tokens_total",
    "srelab:client_disconnects_total",
    "srelab:wasted_decode_steps_total",
]
scrapes = {
    "before": before.metrics_before,
    "last client done": before.metrics_clients_left,
    "engine idle": before.metrics_idle,
}
print(f"{'':34s}" + "".join(f"{k:>18s}" for k in scrapes))
for name in NAMES:
    print(f"{name:34s}" + "".join(f"{metric_value(t, name):18.0f}" for t in scrapes.values()))

# %% [markdown]
# Read it like on-call would:
#
# - right after the last client was done, the engine still **ran 8 requests** while the server
#   **served 0 streams**: 8 orphans, holding KV blocks;
# - `srelab:client_disconnects_total` counts clients that went away before their response
#   ended (the gateway's 499s), and `srelab:wasted_decode_steps_total` counts tokens the engine
#   computed for a request *after* its client had gone. Both are **counters**: cumulative since
#   the server started, so only their increase between two scrapes says anything about a
#   window (`increase()` in PromQL);
# - `vllm:generation_tokens_total` grew by far more than the clients received.
#
# vLLM has no wasted-steps counter; there the signal is the same comparison:
# `vllm:num_requests_running` against the open streams your gateway reports, and the rate of
# generated tokens against the tokens the gateway delivered.
#
# **Exercise 1 (graded).** From two scrapes, compute how many decode steps each departed
# client cost after it left. The check compares your answer with scrapes of a real server made
# during the check, on rounds of different shapes.

# %% tags=["exercise"]
from labsupport.serving.metrics import metric_value


def wasted_steps_per_disconnect(metrics_before: str, metrics_after: str) -> float:
    """Decode steps computed for clients that had already left, per client that left, between
    two scrapes of the server's /metrics (Prometheus text format).

    Use the counters srelab:client_disconnects_total and srelab:wasted_decode_steps_total;
    `metric_value(text, name)` reads a sample's value (None when absent). Counters are
    cumulative. Return 0.0 when no client left between the two scrapes.
    """
    # BEGIN SOLUTION
    names = ("srelab:client_disconnects_total", "srelab:wasted_decode_steps_total")
    left, wasted = (
        (metric_value(metrics_after, n) or 0.0) - (metric_value(metrics_before, n) or 0.0)
        for n in names
    )
    return wasted / left if left else 0.0
    # END SOLUTION


# %%
per_client = wasted_steps_per_disconnect(before.metrics_before, before.metrics_idle)
print(f"each client that left cost {per_client:.0f} decode steps after it was gone")
print(f"it asked for {workload.leaving_max_tokens} tokens and read {workload.leave_after_tokens}")

# %% [markdown]
# Every abandoned request ran to `max_tokens`: the server saw each client go (it counted the
# disconnects) and nobody told the engine. Grade the diagnosis (the fix checks fail until you
# write `stream_outputs` in section 4):

# %%
from labsupport import check

check("286")

# %% [markdown]
# ## 4. Fix
#
# How does a disconnect reach the handler? The server (Starlette's `StreamingResponse` under
# uvicorn) iterates the generator in a task and, beside it, listens for the ASGI
# `http.disconnect` message. When the client goes away:
#
# - the task is **cancelled**: `asyncio.CancelledError` is raised inside the generator at the
#   `await` where it waits for the engine's next output (the usual case: tokens take time);
# - or, if the generator was paused at its `yield` when the server stopped iterating (and on
#   ASGI servers that advertise spec 2.4, where Starlette only notices a disconnect when a
#   write fails), the generator is **closed**: `GeneratorExit` is raised at the `yield`
#   (Python does the same when an unfinished async generator is garbage-collected).
#
# The naive handler lets both exceptions pass, and the engine never hears of it. vLLM's
# `AsyncLLM.generate()` (`vllm/v1/engine/async_llm.py`) is the reference: its loop over the
# request's output queue sits in `try: ... except (asyncio.CancelledError, GeneratorExit):
# await self.abort(request_id, internal=True); raise`. The abort reaches the engine core,
# whose scheduler drops the request and frees its KV blocks at the next step.
#
# Here the handle gives you the same tools: `handle.stream()` (the outputs, ending after the
# one with `finished=True`), `handle.abort()` (the engine drops the request and frees its
# blocks at its next step; a no-op for a finished request), `handle.finished`.
#
# **Exercise 2 (graded).** Write the stream handler the server should have had.

# %% tags=["exercise"]
import asyncio


async def stream_outputs(handle):
    """Yield the engine's outputs for one request, as the server streams them to its client.

    When the client goes away the server stops reading: either its task is cancelled while
    this generator waits for the next output (asyncio.CancelledError at the `await`), or this
    generator is closed between two outputs (GeneratorExit at the `yield`). On both paths,
    abort the engine request (`handle.abort()`), then let the exception continue.
    A client that stays must get every output, the final one included.
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
# Try it before the grader does: `cancel_probe` drives a handler against a real engine in this
# kernel, stopping the way a server stops (`cancel`, `close`) or reading to the end
# (`complete`), then watches the engine for half a second.

# %%
from labsupport.serving import cancel_probe

print(f"{'mode':9s} {'handler':21s} tokens engine ended after left blocks")
for mode in cancel_probe.MODES:
    for handler in (disconnects.naive_stream_outputs, stream_outputs):
        p = cancel_probe.probe(handler, mode)
        ended = p.engine_reason or "running"
        print(
            f"{mode:9s} {handler.__name__:21s} {p.tokens:6d} {ended:>12s} "
            f"{p.steps_after_left:10d} {p.kv_blocks_used:6d}"
        )

# %%
check("286")

# %% [markdown]
# ## 5. Verify
#
# The same workload against two fresh servers, one after the other: the incident's handler,
# then yours, both running inside the real server process.

# %%
runs = disconnects.compare(stream_outputs, workload)
for run in runs.values():
    print(run.describe())
_ = plots.show(disconnect_plots.timeline(runs))

# %% [markdown]
# The headline is what the engine spends per token a client actually receives: 1.0 would be
# no waste at all. (Wasted steps alone would go to zero, and a ratio to zero says nothing.)

# %%
from labsupport import headline

naive, fixed = runs["no cancel"], runs["cancel on disconnect"]
_ = plots.show(
    plots.before_after(
        {label: run.generated_per_delivered for label, run in runs.items()},
        unit="tokens",
        title=f"tokens generated per token a client received ({fixed.device})",
    )
)
_ = headline.record(
    "286",
    metric="tokens generated per token delivered",
    before=naive.generated_per_delivered,
    after=fixed.generated_per_delivered,
    unit="tokens",
    device=fixed.device,
    wasted_steps_before=naive.wasted_steps,
    wasted_steps_after=fixed.wasted_steps,
    busy_after_clients_left_s_before=round(naive.busy_after_clients_left_s, 3),
    busy_after_clients_left_s_after=round(fixed.busy_after_clients_left_s, 3),
    kv_blocks_after_clients_left_before=naive.kv_blocks_after_clients_left,
    kv_blocks_after_clients_left_after=fixed.kv_blocks_after_clients_left,
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
# 13x more tokens generated than delivered). In a Python server the disconnect arrives as
# `asyncio.CancelledError` in the task that streams the response, or as `GeneratorExit` when
# the streaming generator is closed; the code that owns the engine request must catch both,
# abort the request (vLLM V1: `AsyncLLM.abort()`, which `AsyncLLM.generate()` calls itself)
# and re-raise. Non-streaming requests need the handler raced against a disconnect listener
# (vLLM's `@with_cancellation`). Then verify end to end: `vllm:num_requests_running` must
# follow the gateway's open streams, KV usage must drop when clients leave, and every proxy on
# the path must close its upstream connection when its client goes.
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
#   `except Exception` catches neither (both are `BaseException`s).
# - **A proxy can hide the disconnect entirely.** nginx with `proxy_ignore_client_abort on`
#   (the default is off), or a gateway that keeps reading or buffering the upstream response,
#   never closes its connection to the server: your fix never runs. The cell below puts such a
#   proxy in front of your fixed server. (Apache APISIX's ai-proxy only started aborting the
#   upstream read on a client disconnect in April 2026, PR #13254.)
# - **Aborting is not freeing.** The abort must release the request's KV blocks; an engine or
#   wrapper that drops the request but keeps its blocks leaks a little on every Stop press -
#   lab 279's "slower every day".
#
# **Follow-ups an interviewer asks.**
# 1. The client disconnects during a long prefill. When does the abort take effect? (At the
#    next step boundary: the current forward pass finishes.)
# 2. How do you alert on this? (Engine running requests minus connected streams; generated vs
#    delivered token rates; 499 ratio at the gateway.)
# 3. What about retries? A client that times out at 10 s and retries doubles the load unless
#    the first request is aborted - and idempotency keys let you reattach instead.
# 4. With `n > 1` or beam search, what must an abort cover? (Every child request: vLLM's
#    `abort()` expands the parent into its children.)
# 5. Why not just lower `max_tokens`? (It caps the damage, it does not remove it, and it
#    truncates legitimate long answers.)
#
# **References.** vLLM `AsyncLLM.generate` and `abort`:
# https://github.com/vllm-project/vllm/blob/main/vllm/v1/engine/async_llm.py ·
# `with_cancellation` / `listen_for_disconnect`:
# https://github.com/vllm-project/vllm/blob/main/vllm/entrypoints/utils.py ·
# Starlette `StreamingResponse`: https://www.starlette.io/responses/#streamingresponse ·
# nginx `proxy_ignore_client_abort`:
# https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_ignore_client_abort ·
# APISIX ai-proxy, abort upstream read on client disconnect:
# https://github.com/apache/apisix/pull/13254

# %%
proxied = disconnects.run_workload(
    stream_outputs, workload, label="your fix, behind a proxy that ignores client aborts",
    behind_proxy=True,
)  # fmt: skip
print(proxied.describe())
print(
    f"the server counted {proxied.disconnects} disconnects: to it, the proxy is a client that "
    "reads every token"
)
