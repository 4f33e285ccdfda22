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
# A model server's pod is `Running`, never restarted, its port accepts connections, yet every
# request routed to it times out. You will reproduce it with a real model server under a
# Kubernetes-style supervisor, gather the evidence an on-call engineer can gather from outside
# the process, decide which part of the server stopped, then write the probes the server serves
# itself, the manifest that uses them and the gateway limit that sheds overload, and prove them
# against the incident's probes and the classic answer. About 45 minutes; the experiments run in
# about 3 minutes on a CPU.

# %%
from labsupport import device, session
from labsupport.scenarios import port_open_but_not_serving as scenario

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("278", seed=SEED)
variant = scenario.variant(SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="optional",
    stand_in="the tiny model's forward pass runs on the CPU, each engine step paced to about "
    "20 ms like a GPU step, and the engine is a thread of the server process where vLLM V1 runs "
    "a separate EngineCore process; the HTTP stack, the faults, the pod supervisor (10x faster "
    "than a cluster) and the probes are the same",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV2 - llm-chat-prod: 0 % success on pod llm-0 for 14 min** (02:41 UTC)
# >
# > | panel | value |
# > |---|---|
# > | `kube_pod_container_status_restarts_total{pod="llm-0"}` | 0 |
# > | `probe_success` of the gateway's TCP check on :8000 | 1 |
# > | gateway: requests routed to llm-0 | 504 Gateway Timeout, all of them |
# > | GPU utilisation of llm-0's GPU | flat since 02:27 |
# >
# > The pod's probes: `livenessProbe: tcpSocket: {port: 8000}`, `readinessProbe: httpGet:
# > {path: /health, port: 8000}`. No deploy today. The previous on-call wrote: *"port open,
# > no restart: the model server is up, must be the gateway."*
#
# The deployment, as the runbook describes it:

# %%
print(variant.describe())

# %% [markdown]
# The port answers and nothing restarts the pod, yet it serves nothing. Is a TCP check enough?
# Is `/health`? What should the probes look at, and what part of the server has stopped?

# %% [markdown]
# ## 2. Reproduce
#
# `labsupport.serving` is a small but real LLM server: a tiny transformer behind vLLM's
# OpenAI-compatible API (FastAPI on uvicorn, one asyncio event loop), a continuous-batching
# engine with a paged KV cache, and `/metrics` under vLLM's names. It runs `capacity` requests
# at once; the others wait in its queue. In vLLM V1 the engine (`EngineCore`: scheduler, KV
# cache, the GPU steps) runs in a *separate process* from the API server, which talks to it over
# ZMQ; here it is a thread of the server process, which looks the same from the HTTP side. The
# server can be broken at run time, on purpose, through an admin API with a per-run token; each
# fault is a real mechanism in the process, and nothing on `/metrics` or in the logs names it.
#
# `labsupport.k8s` plays the kubelet over real processes: the server runs as a pod's container,
# probes run on the kubelet's schedule (`periodSeconds`, `timeoutSeconds`, `failureThreshold`),
# a failed liveness probe restarts the container, readiness decides whether the pod is Ready
# (in the Service's endpoints). Periods run 10x faster than on a cluster; probe timeouts stay
# real seconds. `runs.run_fault` starts the pod with the incident's probes, waits until it is
# Ready, sends light traffic (each client gives up after 2 s, as the gateway does with a 504),
# breaks the server the way the incident did, and meanwhile gathers what an on-call engineer
# would: TCP connects, `GET /health`, a 1-token completion and `GET /metrics`, once a second,
# each with a 1 s deadline, and the server process's CPU time.

# %%
from labsupport import plots
from labsupport.scenarios.port_open_but_not_serving import plots as lab_plots
from labsupport.scenarios.port_open_but_not_serving import probesets, runs

print(probesets.INCIDENT.describe())
incident = runs.run_fault(
    variant.incident_fault, probesets.INCIDENT, variant, window_s=6, evidence=True, echo=print
)  # about 15 s
t_fault, t_end = incident.phases["fault"]
before, after = incident.served(0, t_fault), incident.served(t_fault, t_end)
median = "-" if before["p50_s"] is None else f"{before['p50_s']:.2f} s"
print(f"\nbefore: {before['served']} requests served, median {median}")
print(f"after:  {after['served']} served, {after['failed']} failed")
print(f"restarts: {incident.restarts}")

# %%
print(incident.describe)  # `kubectl describe pod llm-0` at the end of the run

# %%
_ = plots.show(lab_plots.pod_timeline(incident, title="incident probes; dashed line: it breaks"))

# %% [markdown]
# Every request after the dashed line fails, and the pod is never restarted: the incident,
# reproduced. Whether it stays Ready depends on what broke; `kubectl describe pod` shows
# `Restart Count: 0` and no failed liveness probe.

# %% [markdown]
# ## 3. Diagnose
#
# Here is what the on-call engineer gathered during the fault, one line a second. `TCP`: a
# connect to :8000; `/health`: its HTTP status (`none`: no answer within 1 s); `1-token`: a real
# completion with `max_tokens: 1`; `/metrics`: whether it answered; `on-CPU s` and
# `runnable s`: the process's CPU time so far (`runnable` adds the time its threads waited for a
# free core, `/proc/PID/task/*/schedstat`, so it shows what the process *wanted* even on a busy
# machine).

# %%
print(incident.evidence.table())

# %% [markdown]
# A process that holds its port can stop serving in several places. The candidates, as the
# diagnosis exercise names them:

# %%
for cause, meaning in scenario.CAUSES.items():
    print(f"{cause:<11} {meaning}")

# %% [markdown]
# To tell them apart, look at the same evidence in every situation you can set up on purpose:
# `matrix.run_matrix` starts the server and gathers it idle, under light traffic, at the daily
# peak (a whole batch waiting), and with each way of breaking it the lab knows (the two that
# cannot be switched off again on fresh servers of their own, at the same time). About 30 s.

# %%
from labsupport.scenarios.port_open_but_not_serving import matrix

situations = matrix.NOTEBOOK_SITUATIONS if SCALE == "full" else matrix.SUITE_SITUATIONS
measured = matrix.run_matrix(variant, situations, ticks=3 if SCALE == "full" else 2, echo=print)
print(measured.table())

# %%
_ = plots.show(lab_plots.heatmap(measured))

# %% [markdown]
# Read it row by row:
#
# - **TCP connect passes everywhere.** The kernel completes the handshake from the listening
#   socket's backlog; the process runs no code for it. Only a dead process, a closed socket, or a
#   *full* backlog fails it: when the process stops calling `accept()` long enough for `backlog`
#   connections to pile up (uvicorn's default 2048, capped by `net.core.somaxconn`), new SYNs are
#   dropped and the connect times out (`listen(2)`). That comes late, under a flood of
#   connections, and says nothing about serving.
# - **`/health` answers unless the process cannot run its routes.** Where it answers, it only
#   says whether the engine is alive - as vLLM's does.
# - **A 1-token completion fails in every breakdown, and also at the healthy daily peak**: it
#   waits in the queue behind a whole batch. It measures queueing, not health.
# - **`/metrics` answers whenever `/health` does, and carries the engine's state**: requests
#   running and waiting (`vllm:num_requests_running`, `vllm:num_requests_waiting`) and a step
#   counter: `vllm:iteration_tokens_total` is a histogram of the tokens each engine step
#   computed, so its `_count` goes up by one per step (vLLM's `PrometheusStatLogger` observes it
#   once per iteration).
# - **CPU**: two columns where nothing answers look alike to every probe, but not to the CPU.
#
# Two scrapes a second apart, in each column where `/metrics` answered:

# %%
KEYS = ("vllm:num_requests_running", "vllm:num_requests_waiting",
        "vllm:iteration_tokens_total_count")  # fmt: skip
for situation, ev in measured.evidence.items():
    answered = [scrape for scrape in ev.scrapes if scrape.ok][:2]
    if len(answered) == 2:
        print(f"--- {matrix.LABELS[situation]}")
        for scrape in answered:
            print("   ", "  ".join(f"{k.split(':')[1]}={scrape.value(k):g}" for k in KEYS))

# %% [markdown]
# **Exercise 1 (graded).** Write `diagnose(evidence)`: which of the candidates stopped, and the
# two numbers that decide it. `evidence` is an `Evidence` record like the ones above (its fields:
# `health`, `scrapes`, `cpu`, `tcp`, `completion`; `Scrape.value(name)` reads one sample, e.g.
# `scrape.value("vllm:num_requests_waiting")`, `None` when the scrape did not answer). The check
# gives it evidence written by hand, each case built against a usual misreading, and evidence
# from live servers set up like the columns above; a right cause with wrong numbers, or right
# numbers with the wrong cause, fails. Stuck? `hint("278", 1, "diagnose")` (from
# `from labsupport import hint`); each hint you take is recorded.


# %% tags=["exercise"]
def diagnose(evidence) -> dict:
    """What stopped, read from evidence gathered outside one server for a few seconds.

    Return {"cause": one of "none", "engine", "event_loop", "gil" (see scenario.CAUSES),
            "steps": engine steps between the first and the last scrape that answered
                     (vllm:iteration_tokens_total_count, last minus first; None when fewer
                     than two scrapes answered),
            "cores": what the process wanted: runnable seconds per second over the window
                     ((runnable_s[-1] - runnable_s[0]) / (t_s[-1] - t_s[0]) of evidence.cpu)}.
    """
    # BEGIN SOLUTION
    ok = [s for s in evidence.scrapes if s.ok]
    name = "vllm:iteration_tokens_total_count"
    steps = ok[-1].value(name) - ok[0].value(name) if len(ok) >= 2 else None
    (t0, _, r0), (t1, _, r1) = evidence.cpu[0], evidence.cpu[-1]
    cores = (r1 - r0) / (t1 - t0)
    answered = sum(h is not None for h in evidence.health)
    if answered * 2 < len(evidence.health):  # the process does not run its routes
        cause = "gil" if cores >= 0.5 else "event_loop"
    else:

        def pending(s):
            running = s.value("vllm:num_requests_running") or 0
            return running + (s.value("vllm:num_requests_waiting") or 0)

        stuck = len(ok) >= 2 and pending(ok[0]) > 0 and pending(ok[-1]) > 0 and steps == 0
        cause = "engine" if stuck else "none"
    return {"cause": cause, "steps": steps, "cores": cores}
    # END SOLUTION


# %% [markdown]
# Your reading of every column of the matrix, then of the incident:

# %%
for situation, ev in measured.evidence.items():
    print(f"{matrix.LABELS[situation]:<16}", diagnose(ev))
print(f"{'the incident':<16}", diagnose(incident.evidence))

# %% [markdown]
# Grade it (the fix checks fail until you write section 4):

# %%
from labsupport import check, hint  # noqa: F401 - hint("278", 1, "diagnose") when stuck

check("278")

# %% [markdown] tags=["reveal"]
# **What stopped in this incident.** The variant's answer, with what each fault is:

# %% tags=["reveal"]
from labsupport.scenarios.port_open_but_not_serving.timeline import LABELS

print(f"the incident: {variant.cause} - {scenario.CAUSES[variant.cause]}")
for fault in ("wedged_engine", "blocked_event_loop", "gil_busy_loop"):
    print(f"  {LABELS[fault]:<22} the server fault '{fault}'")

# %% [markdown] tags=["reveal"]
# - **engine stalled** (`wedged_engine`): the engine's step never returns - on a GPU, a kernel
#   that never completes, a collective waiting for a rank that is gone, a hung CUDA graph. The
#   API side lives on, so `/health` (vLLM: "is `EngineCore` alive?") says 200 and the pod stays
#   Ready: the classic incident. Evidence: requests pending at both scrapes, the step counter
#   flat, the process idle on the CPU (on a GPU: utilisation pinned by the stuck kernel, or 0).
# - **event loop blocked** (`blocked_event_loop`): a blocking call (`time.sleep`, a synchronous
#   HTTP client, a lock) on the asyncio loop: no route runs, so `/health` and `/metrics` time
#   out, yet the process sleeps: 0 cores wanted. The engine thread may even go on stepping.
# - **GIL held** (`gil_busy_loop`): a thread in a long C call that never releases the
#   interpreter lock (a pure-Python busy loop only lets go every `sys.getswitchinterval()`):
#   every other thread waits, so nothing answers; the process wants a whole core.
#   `py-spy dump --pid` (or `kill -USR1`, which this server answers with a `faulthandler`
#   dump of every thread) names the frame in both of the last two cases.
#
# TCP passed in all three: only a restart cures any of them, and only a probe that needs the
# process to *work* triggers it.

# %% [markdown]
# ## 4. Fix
#
# Kubernetes gives each probe one job
# ([docs](https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/)):
#
# - **liveness**: failing `failureThreshold` times in a row **restarts the container**. It must
#   fail only when a restart is the cure - the process is stuck and will not recover by itself -
#   and never because the server is busy: a busy server restarted loses its whole batch and its
#   warm caches, and its load moves to the other replicas, which then fail theirs (a cascade).
# - **readiness**: failing takes the pod **out of the Service's endpoints**, nothing else, and
#   puts it back when it passes again. It is for "this pod cannot serve": the engine is dead or
#   stuck, the server is draining. Not for "too much traffic": every replica behind the
#   Service sees the same peak and the same retry storm, so a readiness that fails on load fails
#   on all of them at once and the Service has no endpoint left.
# - **startup**: holds the other two back until the model has loaded (lab 288).
#
# Overload is the **gateway's** job: past a concurrency limit per replica it answers 429 at
# once (Envoy's circuit breakers answer 503), instead of queueing requests behind batches they
# cannot join in time. A shed request costs the replica nothing; the client backs off or
# retries elsewhere.
#
# A probe must be something the kubelet can run: an HTTP GET, a TCP connect, a command in the
# container. So the logic goes into the server: this lab's server serves `GET /livez` and
# `GET /readyz` by calling functions you give it (`srelab serve --livez-handler ...`), each
# with a `Scrape` of the server's own `/metrics` taken now (`current`) and the one taken at the
# previous call of the same endpoint (`previous`, `None` at the first). True answers 200,
# anything else 503. The handler runs on the server's event loop like every route: when the
# loop or the interpreter is stuck, nothing answers and the kubelet's `timeoutSeconds` fails
# the probe by itself. Your functions run inside the server, contained (read-only files, no
# access to the checks).
#
# **Exercise 2 (graded).** Write `liveness(previous, current)` and `readiness(previous,
# current)`. The variant's numbers you need are printed at the top (`variant.describe()`).


# %% tags=["exercise"]
def liveness(previous, current) -> bool:
    """GET /livez: False only when a restart is the cure.

    previous, current: Scrapes of this server's own /metrics at the previous and at this probe
    (previous is None at the first). Fail when the engine is dead (srelab:engine_alive is 0),
    or when work was pending (running + waiting > 0) at both probes and the engine made no step
    in between (vllm:iteration_tokens_total_count). An idle or a busy server is alive.
    """
    # BEGIN SOLUTION
    if current.value("srelab:engine_alive") == 0:
        return False
    if previous is None:
        return True  # nothing to compare with yet
    steps = "vllm:iteration_tokens_total_count"
    pending = [
        (s.value("vllm:num_requests_running") or 0) + (s.value("vllm:num_requests_waiting") or 0)
        for s in (previous, current)
    ]
    return not (min(pending) > 0 and current.value(steps) == previous.value(steps))
    # END SOLUTION


def readiness(previous, current) -> bool:
    """GET /readyz: False when this pod cannot serve: the engine dead, or stuck with work
    pending (the same reading as liveness). Not for a long queue: overload is the gateway's.
    """
    # BEGIN SOLUTION
    if current.value("srelab:engine_alive") == 0:
        return False
    if previous is None:
        return True
    steps = "vllm:iteration_tokens_total_count"
    pending = [
        (s.value("vllm:num_requests_running") or 0) + (s.value("vllm:num_requests_waiting") or 0)
        for s in (previous, current)
    ]
    return not (min(pending) > 0 and current.value(steps) == previous.value(steps))
    # END SOLUTION


# %% [markdown]
# Your probes on the scrapes of section 3 (no new measurement): both should fail in the three
# broken columns - in two of them because nothing answered, which the kubelet's timeout fails
# for you - and pass in the others, the daily peak included.

# %%
print(
    measured.with_probe("your liveness", liveness).with_probe("your readiness", readiness).table()
)

# %% [markdown]
# **Exercise 3 (graded).** Deploy them: `pod_manifest(stall_s, restart_within_s)` returns the
# pod's manifest (start from the incident's, below) whose probes ask `/livez` and `/readyz`; the
# lab runs its own image, command and grace period with your probes and ports. The liveness
# window must outlast the longest legitimate pause of the engine (`stall_s`) and still restart a
# stuck one within the SLO (`restart_within_s`; the first failing probe can come a period after
# the stall began); readiness should act sooner. And `gateway_limit(capacity, peak)`: how many
# requests the gateway lets in flight per replica before it answers 429. The checks call both
# with this deployment's numbers and with others'.

# %%
print(probesets.INCIDENT_MANIFEST)


# %% tags=["exercise"]
def pod_manifest(stall_s: int, restart_within_s: int) -> str:
    """The pod's YAML: httpGet /livez and /readyz on port 8000 and a startup probe for the load.
    The liveness window (periodSeconds x failureThreshold) outlasts a legitimate pause of
    stall_s seconds, and a stuck server is restarted within restart_within_s seconds (the first
    failing probe can come a period late, and a probe waits timeoutSeconds)."""
    # BEGIN SOLUTION
    period, timeout = 10, 1
    failures = stall_s // period + 1  # period x failures > stall_s
    assert period * (failures + 1) + timeout <= restart_within_s, "no window fits these SLOs"
    ready_failures = max(1, min(2, (period * failures - 1) // 5))  # a shorter window: 5 s each
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: llm-0
  labels: {{app: llm-chat}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: server
    image: registry.example.com/llm-server:2.3.1
    command: [python, -m, labsupport.serving.serve_cli, --port, "8000"]
    ports:
    - {{name: http, containerPort: 8000}}
    startupProbe:
      httpGet: {{path: /health, port: http}}
      periodSeconds: 2
      failureThreshold: 300
    livenessProbe:
      httpGet: {{path: /livez, port: http}}
      periodSeconds: {period}
      timeoutSeconds: {timeout}
      failureThreshold: {failures}
    readinessProbe:            # out of the Service before liveness acts
      httpGet: {{path: /readyz, port: http}}
      periodSeconds: 5
      timeoutSeconds: 1
      failureThreshold: {ready_failures}
"""
    # END SOLUTION


def gateway_limit(capacity: int, peak: int) -> int:
    """Requests in flight per replica before the gateway answers 429, for a server that runs
    `capacity` at once and a daily peak of `peak`: the peak passes untouched, and an admitted
    request waits behind at most two batches."""
    # BEGIN SOLUTION
    return max(peak, (peak + 3 * capacity) // 2)  # halfway between the two bounds
    # END SOLUTION


# %% [markdown]
# For this deployment:

# %%
print(pod_manifest(variant.stall_s, variant.restart_within_s))
print("gateway limit:", gateway_limit(variant.capacity, variant.peak), "in flight per replica")

# %%
check("278")

# %% [markdown]
# ## 5. Verify
#
# `verify.compare` runs every scenario on fresh pods, for two designs:
#
# 1. the **incident's probes** (tcpSocket liveness, /health readiness) behind a gateway without
#    a limit; the **classic answer** (/health liveness, a real 1-token completion as readiness)
#    runs on the same pods as shadow probes that act on nothing, so its verdicts come from the
#    same run. Nothing restarts these pods: the loads and then the stalled engine run on one,
#    the other two faults side by side on two more, each watched for 8 s;
# 2. **yours**: your manifest's probes on your /livez and /readyz, behind your gateway limit.
#
# A scenario is handled right when: healthy traffic and the daily peak - Ready throughout, no
# restart, nothing shed; the retry storm - still Ready and alive, the excess shed with 429,
# and at most capacity plus two batches in flight at the replica, as the gateway counted them;
# each fault - restarted by liveness within the window. About 2 minutes.

# %%
from labsupport.scenarios.port_open_but_not_serving import verify

manifest = pod_manifest(variant.stall_s, variant.restart_within_s)
yours = probesets.from_manifest(manifest).with_handlers(livez=liveness, readyz=readiness)
limit = gateway_limit(variant.capacity, variant.peak)
result = verify.compare(variant, yours, limit, scale=SCALE, echo=print)
print()
print(result.table())
for design in result.scorecards:
    print(f"\n{verify.DESIGNS.get(design, design)}:\n{result.explain(design)}")

# %%
_ = plots.show(lab_plots.comparison(result))

# %%
loads = result.runs["incident"][0]
_ = plots.show(
    lab_plots.pod_timeline(
        loads, title="incident pod under load; shadow: the classic 1-token readiness"
    )
)
for phase in ("light", "heavy_load", "overload"):  # requests that started in each phase
    t = loads.served(*loads.phases[phase])
    median = "-" if t["p50_s"] is None else f"{t['p50_s']:.1f} s"
    print(f"{phase:<11} served {t['served']:4d}, failed {t['failed']:4d}, median {median}")

# %% [markdown]
# The classic readiness (the shadow band) leaves the Service at the daily peak although every
# request is served: its 1-token probe waits behind a batch and misses its 1 s deadline three
# times in a row. Every replica behind the Service sees the same peak, so they all leave at
# once: a load spike becomes a full outage. In the storm, the incident's pod stays Ready and
# queues everything: seven batches deep, its requests wait several times longer than at the
# peak, and the gateway's 504s turn into retries that make the storm worse. Yours stays Ready,
# the gateway sheds the excess at once, and what it admits waits behind at most two batches.

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
# long as the process holds its listening socket and its backlog has room: the kernel completes
# the handshake whether or not any thread of the process can run. An HTTP `/health` route
# catches a blocked event loop or a stuck interpreter, but in an LLM server the work happens in
# a separate engine - vLLM V1's `EngineCore` is its own process - and `/health` reports only
# whether that engine is *alive*: a hung kernel, a deadlocked collective or a wedged scheduler
# leaves it at 200. A real 1-token inference does see the hang, but it also fails whenever the
# queue is long, so as readiness it takes every replica out of the Service at the same moment
# under a load spike, and as liveness it restarts busy, healthy servers and cascades. What I
# deploy: **liveness** = the server's own heartbeat - the engine alive, and its step counter
# advancing whenever requests are pending - served by the server at `/livez` and probed with a
# window longer than the longest legitimate step; **readiness** = can this pod serve (engine
# alive and stepping, not draining), probed sooner; **overload** shed at the gateway with a
# per-replica concurrency limit, never by readiness; a **startup probe** for the model load;
# and a **synthetic canary outside the pod** that sends real requests through the gateway with
# its own SLO alert, to page a human for what no probe can fix. And I know that a restart
# often cannot recover a wedged GPU: NVIDIA's Xid catalog gives each driver error an immediate
# action, and for many it is not "restart the app" - its health checks drain the node and reset
# the GPU after Xid 46 ("GPU stopped processing"), and Xid 79 ("fallen off the bus") usually
# takes a reboot - while a restarted container fails at CUDA init or hangs again. So restart
# loops page a human, who cordons and drains the node.
#
# **Where the classic answer is outdated or incomplete.**
#
# - "Use `/health`": vLLM's `/health` returns 503 only when the engine is dead (`EngineDeadError`,
#   PR #24897, merged in 2025 on top of the engine-core process monitor of #21728); a
#   GPU page fault or a hung kernel leaves the `EngineCore` process alive and `/health` at 200
#   (vllm#36960, addressed by PR #36961, closed, and the open #46811, which adds a `/ready` GPU
#   check that skips its dummy batch while requests are in flight); vllm#39863 reports an
#   `EngineCore` that dies or deadlocks under load while the API server keeps answering. Open and
#   closed proposals track forward progress instead - a readiness endpoint with busy-period
#   progress tracking (#43122), `/health/decode` on decode progress (#45526): the heartbeat of
#   this lab. One incident in #46811's discussion even read `num_requests_running` 0 during a
#   wedge: the hang landed before the gauge update, so check more than one signal.
# - "Run a real inference in the health check": SGLang's `/health` generates one token and has
#   needed changes to live with load (sgl-project/sglang#8444 decides by load whether to
#   generate, #8757 and #13320 let deployments skip the generation; its maintainers define
#   healthy as "when busy, at least one batch output", #20259, which is a heartbeat), and it
#   still fails on long prefills (#22511) or piles probe requests up (#35884).
#   Keep inference out of both probes; use it in a canary whose failures page a human.
# - "Readiness on queue length sheds overload": it sheds it onto the other replicas, which are
#   just as loaded, until none is left. Shed at the gateway.
# - "A liveness restart fixes a hung GPU": often not (above). Count restarts and alert.
#
# **Follow-up questions an interviewer asks.**
#
# - Your heartbeat says "stuck" when the counter does not move while work is pending. What if a
#   step legitimately takes 20 s (a huge prefill, a CUDA graph capture)? (Make `periodSeconds x
#   failureThreshold` longer than the longest legitimate step, as the manifest check asks; or
#   count progress inside a step, e.g. chunks of a chunked prefill.)
# - Why serve `/livez` from the server rather than an exec probe that scrapes `/metrics`? (No
#   process start per probe - costly with a Python interpreter, and `timeoutSeconds` counts it -
#   and the same event loop as the traffic answers it, so a blocked loop fails it too.)
# - What does a liveness restart cost on a 70B model, and what stops a restart loop from making
#   it worse? (Minutes of load; the kubelet's back-off; a startup probe; alert on
#   `kube_pod_container_status_restarts_total`.)
# - Readiness fails on every replica at once. What happens to traffic? (No endpoints: the
#   gateway answers 503 for all; with queue-based readiness, a spike does exactly that.)
# - How would you detect a hung NCCL collective in a tensor-parallel engine? (The same heartbeat
#   per rank; NCCL's watchdog and `TORCH_NCCL_*` timeouts; `py-spy dump`; lab 297.)
#
# **References.**
#
# - Kubernetes, liveness, readiness and startup probes:
#   https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/ and
#   https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/
# - vLLM, `vllm:iteration_tokens_total` observed once per engine iteration
#   (`vllm/v1/metrics/loggers.py`, `PrometheusStatLogger.record`) and the metrics list:
#   https://docs.vllm.ai/en/stable/usage/metrics/ ; processes of V1 (API server, `EngineCore`):
#   https://docs.vllm.ai/en/latest/design/arch_overview/
# - vLLM PR #24897, `/health` returns 503 when the engine is dead:
#   https://github.com/vllm-project/vllm/pull/24897 ; PR #21728, engine-core process exit
#   detection: https://github.com/vllm-project/vllm/pull/21728
# - vLLM issue #39863 (EngineCore dead or deadlocked, API server answers):
#   https://github.com/vllm-project/vllm/issues/39863 ; PRs #36961 and #46811 (`/health/ready`,
#   `/ready`, for issue #36960): https://github.com/vllm-project/vllm/pull/46811 ; #43122 and
#   #45526 (progress-based readiness and liveness):
#   https://github.com/vllm-project/vllm/pull/43122 , https://github.com/vllm-project/vllm/pull/45526
# - SGLang health checks: https://github.com/sgl-project/sglang/pull/8444 ,
#   https://github.com/sgl-project/sglang/pull/20259 , https://github.com/sgl-project/sglang/issues/22511
# - `listen(2)`, a full backlog: https://man7.org/linux/man-pages/man2/listen.2.html
# - NVIDIA, Xid catalog and its resolution buckets, and the health checks' recommended actions:
#   https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html ,
#   https://docs.nvidia.com/health-validation/reference/checks/xid.md
# - Envoy circuit breaking (fail fast, back-pressure downstream):
#   https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/circuit_breaking
