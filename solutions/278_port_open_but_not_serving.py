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
# # Lab 278 - The port answers but nothing is served
#
# A model server's pod is `Running`, `Ready`, never restarted, its port accepts connections and
# `/health` says 200, yet every request to it hangs. You will reproduce this with a real model
# server under a Kubernetes-style supervisor, measure which probe sees which failure, read the
# one signal that exposes a hung engine, write the liveness and readiness logic that catches
# every fault without taking healthy pods down under load, and prove it against the incident's
# probes and the classic answer. About 40 minutes; the experiments run in about 3 minutes on a
# CPU, each `check()` in under 2 minutes.

# %%
from labsupport import device

_ = device.banner(
    gpu="optional",
    stand_in="the tiny model's forward pass runs on the CPU, each engine step paced to 20 ms "
    "like a GPU step, and the wedged step waits on a CPU event instead of a GPU kernel that "
    "never finishes; the server, its HTTP stack, the faults, the pod supervisor and the probes "
    "are the same",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV2 - llm-chat-prod: 0 % success on pod llm-0 for 14 min** (02:41 UTC)
# >
# > | panel | value |
# > |---|---|
# > | `kube_pod_status_ready{pod="llm-0"}` | 1 (Ready) |
# > | `kube_pod_container_status_restarts_total{pod="llm-0"}` | 0 |
# > | `probe_success` of the gateway's TCP check on :8000 | 1 |
# > | `GET /health` from a debug pod | 200 in 2 ms |
# > | gateway: requests routed to llm-0 | 504 Gateway Timeout, all of them |
# > | `vllm:num_requests_running` | 2, flat for 14 min |
# > | `vllm:num_requests_waiting` | 0 -> 180, climbing |
# > | GPU utilisation | 100 %, flat |
# >
# > The pod's probes: `livenessProbe: tcpSocket: {port: 8000}`, `readinessProbe: httpGet:
# > {path: /health, port: 8000}`. No deploy today. The previous on-call wrote: *"port open,
# > /health 200, pod Ready: the model server is fine, must be the gateway."*
#
# The pod passes every check Kubernetes makes, and serves nothing. The gateway keeps sending it
# a third of the traffic, and nothing restarts it. Is a TCP check enough? Is `/health`? What
# should the probes look at?

# %% [markdown]
# ## 2. Reproduce
#
# `labsupport.serving` is a small but real LLM server: a tiny transformer behind an
# OpenAI-compatible FastAPI/uvicorn API, with a continuous-batching engine in its own thread (as
# vLLM's engine core is apart from its API server), a paged KV cache, and `/metrics` under vLLM's
# names. It runs at most 32 requests at a time; the others wait in its queue. Faults can be
# switched on at run time; each is the real mechanism in the server process:
#
# - `wedged_engine`: the engine's step never returns (on a GPU: a kernel that never finishes).
#   The engine thread is alive, so `/health` says 200: vLLM's `/health` also only knows
#   whether the engine core is alive.
# - `blocked_event_loop`: a blocking call (`time.sleep(10)`) runs on the asyncio event loop,
#   over and over.
# - `gil_busy_loop`: a thread runs a C call that holds the GIL for 2 s at a time.
#
# `labsupport.k8s` plays the kubelet over real processes: the server runs as a pod's container,
# probes run on the kubelet's schedule (`periodSeconds`, `timeoutSeconds`, `failureThreshold`),
# a failed liveness probe restarts the container, readiness decides whether the pod is Ready
# (in the Service). Periods run 10x faster than on a cluster; probe timeouts stay real seconds.
# `probing.scenarios.run_fault` starts the pod with the incident's probes, waits until it is
# Ready, sends light traffic (2 clients; each gives up after 2 s, as a gateway would with a
# 504), and wedges the engine.

# %%
from labsupport import plots
from labsupport.scenarios.port_open_but_not_serving import plots as probe_plots
from labsupport.scenarios.port_open_but_not_serving import probesets
from labsupport.scenarios.port_open_but_not_serving import runs as scenarios

print(probesets.INCIDENT.describe())
incident = scenarios.run_fault(
    "wedged_engine", probesets.INCIDENT, window_s=8, until_recovered=False, echo=print
)  # BUG: tcpSocket liveness, /health readiness; about 12 s
t_fault, t_end = incident.phases["fault"]
before, after = incident.traffic(0, t_fault), incident.traffic(t_fault, t_end)
print(f"\nbefore the fault: {before['served']} requests served, median {before['p50_s']:.2f} s")
print(f"after the fault:  {after['served']} served, {after['failed']} failed")
print(f"restarts: {incident.restarts}; {incident.verdicts['wedged_engine'].what}")

# %%
print(incident.describe)  # `kubectl describe pod llm-0` at the end of the run

# %%
_ = plots.show(
    probe_plots.pod_timeline(incident, title="incident probes, engine wedged at the dashed line")
)

# %% [markdown]
# The pod stays Ready (green) with no restart while every request after the fault fails: the
# incident, reproduced. `kubectl describe pod` shows `Ready: True`, `Restart Count: 0`, and
# no failed liveness or readiness probe among its events (only the start-up probe's
# "connection refused" while the model loaded).

# %% [markdown]
# ## 3. Diagnose
#
# Which probe would have seen it? `probing.matrix.run_matrix` starts the server and measures,
# once a second, four probes at the same moment, each with a 1 s deadline (the kubelet's default
# `timeoutSeconds`):
#
# - **TCP connect** to the port (`tcpSocket`);
# - **HTTP `/health`** (`httpGet`);
# - **a real 1-token completion** (`POST /v1/completions`, `max_tokens: 1`): the classic answer;
# - **`GET /metrics`**, kept whole as a `Scrape` for later.
#
# in seven situations: idle, light load (2 clients), heavy but healthy load (64 clients, ~32
# waiting), overload (224 clients, ~190 waiting), and the three faults under light load. About
# 50 s.

# %%
from labsupport.scenarios.port_open_but_not_serving import matrix

measured = matrix.run_matrix(echo=print)
print(measured.table())

# %%
_ = plots.show(probe_plots.heatmap(measured))

# %% [markdown]
# Read it row by row:
#
# - **TCP connect passes everywhere.** The kernel completes the TCP handshake from the listen
#   socket's backlog; the process never runs a line of code for it. Only a dead process or a
#   closed socket fails it.
# - **`/health` catches a blocked event loop and a held GIL** (nothing in the process answers),
#   **but not the wedged engine**: the route runs on the event loop and reports whether the
#   engine thread is alive. It is. vLLM V1's `/health` works the same way: it returns 503 on
#   `EngineDeadError` (since PR #24897), i.e. when the engine core *process* has died, and 200
#   on a hung GPU.
# - **A 1-token inference catches every fault, and also fails under heavy, healthy load**: at
#   64 clients the request waits ~2 s in the queue behind the running batch. It measures
#   queueing, not health - and the queue is the same on every replica behind the Service.
# - **`/metrics` answers in the wedge.** The evidence is in it.
#
# Here are the lines that matter from two scrapes a second apart, idle, under light load and in
# the wedge (idle scrapes are taken before the other probes run: a 1-token probe is traffic):

# %%
KEYS = ("vllm:num_requests_running", "vllm:num_requests_waiting", "srelab:engine_steps_total",
        "vllm:generation_tokens_total")  # fmt: skip
for scenario in ("idle", "healthy", "wedged_engine"):
    earlier, later = measured.pairs(scenario)[0]
    print(f"--- {matrix.LABELS[scenario]}: scrapes {later.t_s - earlier.t_s:.2f} s apart")
    for scrape in (earlier, later):
        print("   ", "  ".join(f"{k.split(':')[1]}={scrape.value(k):g}" for k in KEYS))

# %% [markdown]
# In the wedge, requests are running and waiting, yet the engine's step counter (and the
# generated-token counter) do not move between the two scrapes. When the server is idle they do
# not move either - with nothing pending, that is fine. vLLM exports no step counter, but
# `vllm:generation_tokens_total` and `vllm:prompt_tokens_total` advance with every step that
# does work, which is what the open vLLM proposals for hung-engine detection track as "forward
# progress".
#
# **Exercise 1 (graded).** From two successful scrapes of `/metrics`, decide whether the
# engine is stuck. `Scrape.value(name)` reads one sample, e.g.
# `scrape.value("vllm:num_requests_waiting")`; print `later.text` to see every name. The check
# takes live scrapes of an idle, a lightly and a heavily loaded, and a wedged server and
# compares your answer with what was running.


# %% tags=["exercise"]
def engine_stuck(earlier, later) -> bool:
    """True when the engine made no progress between two scrapes although work was pending.

    earlier, later: labsupport.serving.scrape.Scrape, both successful (.ok), about a second
    apart. Work is pending when requests are running or waiting. Progress: the engine step
    counter (srelab:engine_steps_total) or the token counters advanced.
    """
    # BEGIN SOLUTION
    pending = [
        s.value("vllm:num_requests_running") + s.value("vllm:num_requests_waiting")
        for s in (earlier, later)
    ]
    steps = later.value("srelab:engine_steps_total") - earlier.value("srelab:engine_steps_total")
    return min(pending) > 0 and steps == 0
    # END SOLUTION


# %% [markdown]
# Your rule as one more row of the matrix, computed from the scrapes already taken: a probe
# that fails when the engine is stuck (the first scrape of each column has no predecessor, so
# it passes).


# %%
def heartbeat(previous, current):
    return previous is None or not previous.ok or not engine_stuck(previous, current)


print(measured.with_probe("engine heartbeat (yours)", heartbeat).table())

# %% [markdown]
# Grade it (the fix checks fail until you write section 4):

# %%
from labsupport import check

check("278")

# %% [markdown]
# ## 4. Fix
#
# Kubernetes gives each probe one job
# ([docs](https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/)):
#
# - **liveness**: failing `failureThreshold` times in a row **restarts the container**. It must
#   fail only when a restart is the cure - the process is stuck and will not recover - and
#   never because the server is busy: a busy server restarted loses its whole batch and
#   its warm caches, and the load moves to the other replicas, which then fail theirs
#   (a cascade).
# - **readiness**: failing takes the pod **out of the Service's endpoints**, nothing else.
#   It is the tool for "do not send me more right now": saturated, draining, or not able to
#   serve. The kubelet keeps probing and puts the pod back when it passes again.
# - **startup**: holds the other two back until the model has loaded (lab 288). The pods
#   here already have one.
#
# So the design the current best practice converges on:
#
# - **liveness = cheap + engine heartbeat**: `/metrics` must answer within the deadline (a
#   blocked event loop or a held GIL fails it), the engine must be alive, and its step
#   counter must advance while work is pending (a wedged engine fails it). Idle is alive.
# - **readiness = engine state + saturation**: the same scrape, plus "not too many requests
#   waiting" (`vllm:num_requests_waiting`), so an overloaded replica sheds new traffic and
#   comes back as soon as its queue drains. A queue that waits, but drains at full speed, is
#   not a reason to leave the Service.
# - a **real inference** belongs in a synthetic canary *outside* the pod, with its own SLO
#   alert (section 6), not in either probe.
#
# **Exercise 2 (graded).** Write `liveness` and `readiness`. The prober calls each one at every
# probe, with the scrape it just took of `/metrics` (`current`, with a 0.9 s deadline) and the
# one it took at the previous probe of the same container (`previous`, None at the first
# probe). `current.ok` is False when the server did not answer in time; `current.error` says
# why. Liveness is probed every second (`periodSeconds: 10` at 10x speed), readiness every
# 0.5 s; each fails the pod after 3 failures in a row. The checks run each fault and each load
# on a supervised pod with your probes.

# %% tags=["exercise"]
SATURATED_WAITING = 64  # two full batches waiting (the server runs 32 requests at a time)


def liveness(previous, current) -> bool:
    """Liveness probe: False only when a restart is the cure.

    previous, current: Scrape of /metrics (previous may be None or a failed scrape). Fail
    when the server did not answer, when the engine is dead (srelab:engine_alive), or when
    the engine is stuck between the two scrapes. An idle or a busy server is alive.
    """
    # BEGIN SOLUTION
    if not current.ok:
        return False  # nothing answered within the deadline: the event loop or the GIL is stuck
    if current.value("srelab:engine_alive") == 0:
        return False
    if previous is None or not previous.ok:
        return True  # nothing to compare with yet
    return not engine_stuck(previous, current)
    # END SOLUTION


def readiness(previous, current) -> bool:
    """Readiness probe: False when this replica should get no new traffic for now.

    Not ready when the server did not answer, the engine is dead or stuck, or more than
    SATURATED_WAITING requests are waiting (vllm:num_requests_waiting). Ready again as
    soon as that is no longer so.
    """
    # BEGIN SOLUTION
    if not current.ok or current.value("srelab:engine_alive") == 0:
        return False
    if current.value("vllm:num_requests_waiting") > SATURATED_WAITING:
        return False
    return previous is None or not previous.ok or not engine_stuck(previous, current)
    # END SOLUTION


# %% [markdown]
# Your probes on the scrapes of section 3 (no new measurement): liveness should fail in the
# three faults only, readiness also in the overload.

# %%
print(
    measured.with_probe("your liveness", liveness).with_probe("your readiness", readiness).table()
)

# %%
check("278")

# %% [markdown]
# ## 5. Verify
#
# `probing.verify.compare` runs every scenario on fresh pods, twice:
#
# 1. with the **incident's probes** (tcpSocket liveness, /health readiness), each fault watched
#    for 8 s; the **classic answer** (/health liveness, 1-token inference readiness) runs on the
#    same pods as shadow probes that act on nothing, so its verdicts come from the same run;
# 2. with **your probes** as the pod's own.
#
# A scenario is handled right when: healthy and heavy load - Ready throughout, no restart;
# overload - out of the Service during the overload, no restart, back once the queue has
# drained; each fault - restarted by liveness within the window. About 2 minutes.

# %%
from labsupport.scenarios.port_open_but_not_serving import verify

result = verify.compare(liveness, readiness, echo=print)
print()
print(result.table())
for design in result.scorecards:
    print(f"\n{verify.DESIGNS.get(design, design)}:\n{result.explain(design)}")

# %%
_ = plots.show(probe_plots.comparison(result))

# %%
loads = result.runs["incident"][0]
_ = plots.show(
    probe_plots.pod_timeline(
        loads, title="incident pod under load; shadow: the classic 1-token inference readiness"
    )
)
for phase in ("light", "heavy_load"):  # requests that started in each phase
    t = loads.traffic(*loads.phases[phase])
    print(f"{phase:<10} served {t['served']:4d}, failed {t['failed']}, median {t['p50_s']:.1f} s")

# %% [markdown]
# The classic readiness (the shadow band) leaves the Service under heavy but healthy load:
# every request is served (numbers below), yet a 1-token probe waits behind the queue and misses
# its 1 s deadline three times in a row. Every replica behind the Service sees the same load,
# so they all leave at once and the Service has no endpoint: a load spike becomes a full
# outage. Your readiness stays Ready there and leaves only in the overload.

# %%
from labsupport import headline

times = result.detection_s("yours")
headline.record(
    "278",
    metric="incident scenarios handled right",
    before=result.handled("incident"),
    after=result.handled("yours"),
    unit="of 6",
    higher_is_better=True,
    classic_answer=result.handled("classic"),
    restart_s_yours={f: None if t is None else round(t, 1) for f, t in times.items()},
    fault_window_s=result.fault_window_s,
    device=result.device,
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** Is a TCP port check enough to know an LLM server is healthy? Should
# the health check run a real inference?
#
# **Model answer.** No to the first, and not as a probe to the second. A TCP check passes as
# long as the process holds its listening socket: the kernel completes the handshake from the
# backlog even when no thread of the process can run. An HTTP `/health` route catches a
# blocked event loop or a stuck interpreter, but in an LLM server the work happens in a
# separate engine (vLLM's EngineCore process, a GPU stream), and `/health` reports only
# whether that engine is *alive*: a hung kernel, a deadlocked collective or a wedged scheduler
# leaves it at 200. A real 1-token inference does see the hang, but it also fails whenever the
# queue is long, so as a readiness probe it takes every replica out of the Service at the same
# moment under a load spike, and as a liveness probe it restarts busy, healthy servers and
# cascades. What I deploy: **liveness** = a cheap local check plus an engine heartbeat -
# `/metrics` answers within the deadline and the engine's step or token counters advance
# whenever requests are pending; **readiness** = engine alive and not stuck, plus saturation
# (`vllm:num_requests_waiting` above a threshold, with the probe's thresholds as hysteresis);
# a **startup probe** for the model load; and a **synthetic canary outside the pod** that sends
# real requests through the gateway with its own SLO alert, to page a human for what no probe
# can fix (bad outputs, a broken route, a bad model version).
#
# **Where the classic answer is outdated or incomplete.**
#
# - "Use `/health`": vLLM's `/health` returns 503 only on `EngineDeadError` (PR #24897, 2025);
#   with a GPU page fault or a hung kernel the engine process lives on and `/health` stays 200
#   (vllm#36960, which proposes a `/health/ready` running a dummy 1-token forward pass; vllm#39863
#   reports an EngineCore hang under load with the API server still answering). At the time
#   of writing, open PRs propose a GPU readiness check that skips the dummy batch while
#   requests are in flight (#46811) and forward-progress tracking of the engine (#43122,
#   #45526): the heartbeat of this lab.
# - "Run a real inference in the health check": SGLang's `/health_generate` does, and needed
#   several fixes to avoid failing or queueing behind real traffic under load
#   (sgl-project/sglang#8444, #8757, #13320). Keep real inference out of the liveness probe
#   and out of readiness; use it in a canary whose failures page a human.
# - "`/health` for both probes": then readiness can never shed load, and liveness cannot see
#   a wedged engine (the incident: 0 of 3 faults restarted, section 5).
#
# **Follow-up questions an interviewer asks.**
#
# - Your heartbeat says "stuck" when the counters do not move while work is pending. What if
#   one step legitimately takes 20 s (a huge prefill, a long CUDA graph capture)? (Size
#   `periodSeconds x failureThreshold` above the longest legitimate step; or count progress
#   inside a step, e.g. layers or chunks.)
# - What does a liveness restart cost on a 70B model, and what stops a restart loop from
#   making it worse? (Minutes of load; the kubelet's back-off; a startup probe; alert on
#   `kube_pod_container_status_restarts_total`.)
# - Readiness fails on every replica at once. What happens to traffic, and how do you
#   prevent it? (No endpoints: connection refused / 503 from the gateway; queue-based
#   readiness with a threshold well above steady load, admission control in the gateway.)
# - Where does the canary run and what does it alert on? (Outside the cluster's failure
#   domain, through the real ingress; success ratio and TTFT against the SLO, burn-rate alerts.)
# - How would you detect a hung NCCL collective in a tensor-parallel engine? (The same
#   heartbeat: every rank's step counter; `NCCL_TIMEOUT`/watchdogs; `py-spy dump`.)
#
# **References.**
#
# - Kubernetes: liveness, readiness and startup probes:
#   https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/ and
#   https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/
# - vLLM PR #24897, `/health` returns 503 when the engine is dead:
#   https://github.com/vllm-project/vllm/pull/24897
# - vLLM issue #36960, `/health` stays 200 on a hung GPU; `/health/ready` proposal:
#   https://github.com/vllm-project/vllm/issues/36960
# - vLLM issue #39863, EngineCore hangs while the API server answers:
#   https://github.com/vllm-project/vllm/issues/39863
# - SGLang native APIs (`/health`, `/health_generate`):
#   https://docs.sglang.io/basic_usage/native_api.html
# - vLLM metrics (`vllm:num_requests_waiting`, `vllm:generation_tokens_total`):
#   https://docs.vllm.ai/en/stable/usage/metrics/
