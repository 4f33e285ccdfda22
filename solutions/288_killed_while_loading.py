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
# # Lab 288 - Killed while loading the model
#
# After a release the model server never becomes ready: Kubernetes restarts it again and again,
# each time a little later, and it never crashed by itself. You will reproduce the restart loop
# with a real model server under a supervisor that follows the kubelet's rules, measure how
# long a start really takes from the evidence Kubernetes gives you, write the manifest that
# fixes it, and prove that the fixed pod gets ready on its first start while a server that
# hangs later is still restarted. About 30 minutes; the code runs in about 2 minutes.

# %%
from labsupport import device, session
from labsupport.scenarios import killed_while_loading as scenario

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("288", seed=SEED)
variant = scenario.variant(SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="optional",
    stand_in="the model server loads its checkpoint onto the CPU, and a sleep stands in for "
    "torch.compile and CUDA-graph capture; the cluster is the lab's supervisor with the "
    "kubelet's probe and restart rules, running 10x faster than real time",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV2 - llm-server: 0/1 ready, CrashLoopBackOff** (09:40 UTC)
# >
# > ```
# > $ kubectl get pods -l app=llm-server
# > NAME         READY   STATUS             RESTARTS      AGE
# > llm-server   0/1     CrashLoopBackOff   7 (2m ago)    21m
# > ```
# >
# > | panel | value |
# > |---|---|
# > | ready replicas | 0 of 1 since the 09:19 deploy |
# > | `kube_pod_container_status_restarts_total` | +7 in 20 min, then slower and slower |
# > | last termination | `Error`, exit code 143 |
# > | node, GPU | healthy; no Xid errors, no OOM kill |
# > | `kubectl logs --previous` | stops mid-load: no `startup` line, no `listening on` |
# >
# > What changed: this morning's release ships a bigger checkpoint, downloaded when the
# > container starts, and turns on compilation and CUDA-graph capture at start-up. The
# > manifest has not changed in a year.
#
# Exit code 143 is 128 + 15: the process ended on SIGTERM. Nobody ran `kubectl delete`, no
# node drained, the server did not crash: something sent it SIGTERM and then started it
# again. Who, and why does it never get past loading?

# %% [markdown]
# ## 2. Reproduce
#
# The pod's manifest, as it is in production (only the image is a placeholder):

# %%
from labsupport.scenarios.killed_while_loading import pods, starts, timeline

print(variant.manifest)

# %% [markdown]
# What runs it here:
#
# - **The server** is the model server of the serving labs (`labsupport.serving.serve_cli`),
#   started with this command. On every start it writes its safetensors checkpoint (a pod
#   without a model cache downloads its weights on every start), reads it, moves it to the
#   device (the GPU when there is one), warms the engine up, then spends a few seconds in
#   `--fault slow_start=S`, a sleep that stands in for `torch.compile` and CUDA-graph
#   capture. Only then does it listen on its port, as vLLM does: until the model is loaded, a
#   connection to the port is refused.
# - **The cluster** is `labsupport.k8s`: a supervisor that plays the kubelet over real
#   processes and validates manifests against the real Kubernetes schema. It follows the
#   documented rules for probes (first probe `initialDelaySeconds` after the container
#   started, then every `periodSeconds`; after `failureThreshold` failures in a row the
#   probe's verdict changes), for termination (SIGTERM, SIGKILL after the grace period) and
#   for restart back-off (10 s, doubling up to 5 minutes, reset after 10 minutes of running).
# - **Time** in the manifest runs 10x faster (`starts.TIME_SCALE = 0.1`): `periodSeconds: 10`
#   probes every real second, a 10 s back-off waits one real second. Processes run in real
#   time, so a start that takes 4.5 real seconds is a 45 s start in the manifest's units
#   ("cluster seconds" below).
#
# Run it (20 real seconds, 200 cluster seconds) and watch the events as the kubelet emits them
# (the readiness failures every half second are left out):

# %%
WINDOW_S = 20.0 if SCALE == "full" else 10.0


def show(t_s, event):
    if "Readiness probe failed" not in event.message:
        print(f"{t_s:5.1f} s  {event.type:<7} {event.reason:<9} {event.message[:92]}")


incident = pods.run_pod(variant.manifest, variant.server, window_s=WINDOW_S, on_event=show)
print(incident.summary())

# %% [markdown]
# `kubectl describe pod` at the end of the window (ages in real seconds, probe settings in
# manifest seconds):

# %%
print(incident.describe)

# %%
from labsupport import plots

_ = plots.show(timeline.timeline(incident, title="the incident's pod: " + incident.headline()))

# %% [markdown]
# Before you read on, answer from the events and the plot: which component sent SIGTERM, and
# how long after each container started? What was the server doing at that moment, and what
# did each probe get back? Why are the restarts further and further apart?

# %% [markdown]
# ## 3. Diagnose
#
# Whatever the fix, you need the length of a start, and the killed containers cannot tell
# you: their logs stop mid-load. Start the same container with no probes, as debug pods (a
# copy of the pod without probes, or `kubectl run` with the same image and command), and read
# what Kubernetes records for each: when the container started and its logs with
# `kubectl logs --timestamps`. Here the debug pods run side by side on the same node, so each
# is a little slower than alone (10 to 20 s for the lot on 2 cores):

# %%
debug = starts.debug_starts(variant.debug_sizes(SCALE))
evidence = [start.evidence() for start in debug]
print("startedAt:", evidence[0]["startedAt"])
print("\n".join(evidence[0]["logs"]))

# %% [markdown]
# `startedAt` is the container's start as the container runtime records it (CRI
# `ContainerStatus.started_at`, nanoseconds; `kubectl get pod -o json` rounds it to the
# second, too coarse for a cluster that runs 10x fast). The logs carry the kubelet's
# timestamps, nine fractional digits. The server also times its own phases and prints them
# in its `startup` line. Which of these clocks matters for the pod?
#
# **Exercise 1 (graded).** From this evidence, how long did the slowest start take? Stuck?
# `hint("288", 1, "slowest_start_s")` (up to 3) gives a hint and notes it in your transcript.

# %% tags=["exercise"]
from datetime import datetime, timezone


def slowest_start_s(starts: list[dict]) -> float:
    """Real seconds the slowest of these starts took: from the container's start until the
    server could answer a probe.

    Each start is a dict {"startedAt": "2026-11-25T14:02:11.123456789Z", "logs": [...]}:
    startedAt in RFC 3339 as the container runtime prints it (UTC, up to nine fractional
    digits, trailing zeros dropped), logs as `kubectl logs --timestamps` prints them:
    "<RFC 3339 time, nine fractional digits> <the line>". A probe can first succeed once the
    server listens on its port: find the line that says so. Python's datetime keeps
    microseconds, and `datetime.fromisoformat` reads these stamps only from Python 3.11 on:
    `datetime.strptime(..., "%Y-%m-%dT%H:%M:%S")` on the part before the dot, plus the
    fraction, works everywhere.
    """

    # BEGIN SOLUTION
    def seconds(stamp: str) -> float:
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        at = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        return at.timestamp() + float("0." + (fraction or "0"))

    durations = []
    for start in starts:
        began = seconds(start["startedAt"])
        for line in start["logs"]:
            stamp, _, text = line.partition(" ")
            if text.startswith("listening on"):
                durations.append(seconds(stamp) - began)
                break
    return max(durations)
    # END SOLUTION


# %%
slowest = slowest_start_s(evidence)
load_time_seconds = slowest / starts.TIME_SCALE  # in the manifest's (cluster) seconds
print(f"slowest start: {slowest:.2f} real s = {load_time_seconds:.0f} cluster seconds")

# %% [markdown]
# Grade the diagnosis: the check compares your function with written evidence whose answer is
# known and with fresh starts of two servers measured while it runs (the fix checks fail
# until you write `fixed_manifest` in section 4):

# %%
from labsupport import check

check("288")

# %% [markdown] tags=["reveal"]
# **What happened.** The grader's truth is `port_open_s`, measured independently of the logs
# (the lab connects to the port every 20 ms). Beside it, the server's own `total_s`:

# %% tags=["reveal"]
for start in debug:
    print(
        f"port open {start.port_open_s:.2f} s after startedAt; "
        f"the server's own total_s {start.phases['total_s']:.2f} s"
    )
from labsupport.k8s import manifests

incident_container = manifests.load(variant.manifest)["spec"]["containers"][0]
print("the incident's liveness probe:", incident_container["livenessProbe"])
print(
    f"it kills every start 5 + 2 x 10 = 25 cluster seconds after it started; "
    f"a start takes about {load_time_seconds:.0f}"
)

# %% [markdown] tags=["reveal"]
# - The server's own timers start after Python, torch and (on a GPU) the CUDA context are up:
#   a second or more that the kubelet's clock, which starts at `startedAt`, counts. That
#   `total_s` is the number people put in the runbook, and it undersizes every budget.
# - In the incident the liveness probe starts 5 s after the container started, finds the
#   port closed (*connection refused*) every 10 s, and on the third failure, 25 s after the
#   start, the kubelet kills the container: `Killing ... failed liveness probe, will be
#   restarted`, then SIGTERM: exit code 143, as on the page.
# - The new container starts the load from zero (download included) and is killed at 25 s
#   again. From the second restart on the kubelet waits before restarting (`BackOff`: 10 s,
#   20 s, 40 s ... up to 300 s): `CrashLoopBackOff`, restarts ever further apart.
# - The readiness probe fails too, which is right (not loaded = not ready), but it only takes
#   the pod out of the Service: it never kills anything. Liveness does.
#
# The probes were fine for the old model. The new start takes longer than liveness allows, so
# no start can ever finish: every restart repeats the whole load and is killed at the same
# point.

# %% [markdown]
# ## 4. Fix
#
# **Exercise 2 (graded).** Return the fixed manifest (YAML) for a server whose slowest start
# takes `load_time_seconds` cluster seconds: a start like that must never be killed, a start
# that is stuck must still be restarted, and a server that hangs after its start must be
# restarted within a minute. `hint("288", 1, "fixed_manifest")` if you want one.

# %% [markdown] tags=["reveal"]
# Liveness answers "is this process broken beyond repair?". During the load the honest answer
# is "not yet known", and liveness cannot say that: it only sees a closed port. What people
# reach for:
#
# - **`initialDelaySeconds: 60` on liveness** - the pre-2020 workaround. It delays liveness
#   on *every* start, so a server that hangs in its first minute goes unnoticed for that
#   minute, and the number is a guess that breaks with the next, bigger model.
# - **`failureThreshold: 30` on liveness** - lets loads finish, and also lets a hung server
#   sit for 5 minutes, forever after, on every hang.
# - **no liveness probe** - nothing kills a server that hangs after start-up (a deadlocked
#   engine, a blocked event loop): it stays Running and not ready until a human notices.
# - **a `startupProbe`** (KEP-950, GA since Kubernetes 1.20): while it has not succeeded,
#   liveness and readiness do not run at all; it may fail `failureThreshold` times, every
#   `periodSeconds`, before the kubelet restarts the container; once it succeeds it never runs
#   again for that container, readiness is probed at once, and liveness takes over with its
#   own, short settings. The budget covers the load once; liveness stays fast for the rest of
#   the container's life.

# %% tags=["exercise"]
import math


def fixed_manifest(load_time_seconds: float) -> str:
    """The llm-server Pod manifest (YAML) for a server whose slowest start took
    `load_time_seconds`, in the manifest's (cluster) seconds.

    Start from the incident's manifest (print(variant.manifest)) and keep it a v1 Pod with the
    same container, port and readiness probe. How long a start may take must follow
    `load_time_seconds`: at least 1.5x it (starts get slower), at most max(5x, +300 s) (a
    start that is stuck must still be restarted), looked at every 10 s or more often (a loaded
    server should not wait long to be ready). A server that hangs after its start must be
    restarted within a minute. The grader runs your manifest with the real slow server
    (command and args replaced by its own) and then makes the server hang.
    """
    # BEGIN SOLUTION
    period_seconds = 5
    # Twice the slowest start seen: starts are slower on a busy node, with a cold page cache,
    # with next month's model. A start that takes longer is stuck: restart it.
    failures = math.ceil(2 * load_time_seconds / period_seconds)
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: llm-server
  labels:
    app: llm-server
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: server
    image: registry.example.com/llm-server:2.3.1
    command: [python, -m, labsupport.serving.serve_cli]
    args: [--port, $(PORT), --weights-mb, "256", --fault, slow_start=3]
    ports:
    - name: http
      containerPort: 8000
    startupProbe:
      httpGet: {{path: /health, port: http}}
      periodSeconds: {period_seconds}
      failureThreshold: {failures}
    readinessProbe:
      httpGet: {{path: /ready, port: http}}
      periodSeconds: 5
    livenessProbe:
      httpGet: {{path: /health, port: http}}
      periodSeconds: 10
      timeoutSeconds: 1
      failureThreshold: 3
"""
    # END SOLUTION


# %% [markdown]
# Validate it against the Kubernetes schema (a typo such as `periodSecond` is reported with
# its path), then run it: the same server, then, a while after the pod got ready, its event
# loop is blocked (`POST /admin/fault blocked_event_loop`: `/health` stops answering, the
# process stays up and the port stays open), to see that liveness still does its job.

# %%
from labsupport.k8s import manifests

fixed = fixed_manifest(load_time_seconds)
container = manifests.validate(fixed)["spec"]["containers"][0]
for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
    print(f"{kind:<15}", container.get(kind, "none"))
after = pods.run_pod(
    fixed,
    variant.server,
    window_s=60.0,
    hang_after_ready_s=variant.hang_after_ready_s,
    on_event=show,
    expected_s=slowest + 6.0,
)
print(after.summary())

# %%
_ = plots.show(timeline.timeline(after, title="the fixed pod: " + after.headline()))

# %% [markdown] tags=["reveal"]
# The startup probe failed while the port was closed, as liveness did before, but its
# failures are budgeted: the pod got ready on its first start, and readiness was probed as
# soon as the startup probe succeeded. Liveness and readiness did not run at all until then
# (no `Liveness probe failed` during the load). After the hang, liveness failed three times in
# a row and the kubelet restarted the container within about 30 cluster seconds. Grade the
# fix:

# %%
check("288")

# %% [markdown]
# ## 5. Verify
#
# Both manifests, run in this notebook with the same server: the incident's for its window,
# the fixed one until it was ready and a hang was caught. The headline counts the container
# starts it takes to get one ready pod: each start is a full download and load, on a GPU node
# that serves nothing meanwhile. The incident's pod never gets ready, so its count (the starts
# within the window) is a lower bound.

# %%
result = pods.Comparison(incident, after)
print("before:", result.before.summary())
print("after: ", result.after.summary())
_ = plots.show(timeline.comparison(result))
bars = plots.before_after(
    {
        "liveness only (never ready)": result.before.starts,
        "startupProbe + liveness": result.after.starts_until_ready,
    },
    unit="",
    title=f"container starts to get one ready pod ({result.before.window_s:.0f} s window)",
)
bars.axes[0].set_ylabel("container starts")
_ = plots.show(bars)

# %%
from labsupport import headline

before, after = result.before, result.after
_ = headline.record(
    "288",
    metric="container starts to get one ready pod",
    before=before.starts,
    after=after.starts_until_ready,
    unit="starts",
    seed=SEED,
    window_cluster_s=round(before.window_s / before.time_scale),
    before_ready=before.ready_s is not None,
    before_restarts=before.restart_count,
    before_killed_while_loading=before.killed_while_loading,
    after_restarts_before_ready=after.restarts_before_ready,
    after_ready_cluster_s=after.ready_s and round(after.ready_s / after.time_scale, 1),
    load_time_cluster_s=round(load_time_seconds, 1),
    startup_probe=container.get("startupProbe"),
    hang_caught_cluster_s=after.hang_detected_seconds and round(after.hang_detected_seconds, 1),
    device=device.device_name(),
    server_device=after.containers[0].phases.get("device"),
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** Loading the model takes about two minutes, and the liveness probe
# kills the pod before it finishes. What do you do?
#
# **Model answer.** The kubelet is doing what the manifest says: liveness fails while the
# server loads (vLLM reserves its port early but listens only once the engine is up, so the
# probe gets *connection refused*), and after `failureThreshold` failures the container is
# killed and restarted, from zero, into a CrashLoopBackOff. I would add a `startupProbe` on the
# same endpoint (`/health`) and leave liveness short. Until the startup probe succeeds the
# kubelet runs neither liveness nor readiness (KEP-950, GA in 1.20); it allows
# `failureThreshold x periodSeconds` for the start, e.g. 30 x 10 s = 300 s for a 2-minute
# load, and once it has succeeded readiness is probed at once and liveness takes over and
# catches a hang in seconds. To size it I measure the start the way the kubelet counts it,
# from the container's start to the first moment the server answers (not the server's own
# load timer), over many starts, and budget for the p99 with a margin, and not much more:
# a stuck start must still be restarted. And I would make the start shorter, because every
# crash and every new node pays it.
#
# **Where the classic answer is incomplete.** "Add a startupProbe with 30 x 10 s" is right,
# and it leaves out:
#
# - **What the budget must cover.** The p99 of everything between container start and the
#   port opening: interpreter and CUDA initialisation, the weights download when they are not
#   on the node, loading them, `torch.compile` and CUDA-graph capture (tens of seconds to
#   minutes on vLLM). Image pulls and init containers are not in it: the startup clock starts
#   when the main container starts. A first start on a new node (cold page cache, no compile
#   cache) is the slow one.
# - **A fixed number is a guess.** 30 x 10 s fits this model and not the next; derive the
#   budget from measured starts and alert when starts approach it.
# - **Making starts faster.** Persist vLLM's compile cache across restarts
#   (`VLLM_CACHE_ROOT`, default `~/.cache/vllm`, holds `torch_compile_cache`) and the weights
#   (a volume or a model cache, not a download per start), and load them fast (lab 293).
# - **Keep liveness cheap and local.** `/health` answers from the process: no GPU work, no
#   dependency on other services (a liveness probe that calls the database restarts every
#   pod when the database is slow). Readiness can check more (`/v1/models`, queue depth).
# - **`initialDelaySeconds` is the old workaround.** It delays liveness on every start and
#   hides a hang in that window; with a startupProbe, liveness needs no initial delay.
# - **An upper bound matters too.** A startup budget of hours means a start that is stuck (a
#   hung download, a deadlock in distributed initialisation) is never restarted.
#
# **Follow-up questions an interviewer asks.**
#
# - The startup budget is right, but every rollout of a bigger model is marked failed. Why?
#   (A Deployment's `progressDeadlineSeconds`, default 600 s: when no new pod becomes
#   available for that long the rollout reports `ProgressDeadlineExceeded`. Rollouts are
#   lab 299.)
# - Readiness vs startup vs liveness: which one takes the pod out of the Service, which one
#   restarts it, which one runs only once?
# - Why did the restarts get slower and slower, and when does the back-off reset?
#   (10 s doubling to 5 min; the kubelet resets it after a container has run 10 minutes.)
# - The startupProbe names a port the container does not declare. What happens? (The kubelet
#   cannot run the probe: a prober error, logged and thrown away, not a failure. The start is
#   never judged, never restarted and never ready.)
# - The load time doubled after a model upgrade and nobody changed the probes. How would you
#   have known before the page? (Alert on start-up phase durations, e.g. vLLM's engine init
#   logs, against the startup budget.)
# - What would a TCP startup probe miss that an HTTP one catches? (A server that listens
#   early and answers 503 while loading: TCP succeeds at once and hands over to liveness too
#   soon.)
#
# **References.**
#
# - Configure liveness, readiness and startup probes:
#   https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/
# - KEP-950, startup probes: https://www.kubernetes.dev/resources/keps/950/
# - Pod lifecycle, container restart back-off:
#   https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/
# - The kubelet: readiness triggered when the startup probe succeeds
#   (`pkg/kubelet/prober/prober_manager.go`, `UpdatePodStatus`), prober errors thrown away
#   (`pkg/kubelet/prober/worker.go`, `doProbe`), log timestamps in `RFC3339NanoFixed`
#   (`pkg/kubelet/kuberuntime/logs/logs.go`), `startedAt` to the second
#   (`staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/time.go`): https://github.com/kubernetes/kubernetes
# - The container runtime's start time in nanoseconds (CRI `ContainerStatus.started_at`):
#   https://github.com/kubernetes/cri-api
# - vLLM reserves its port before the engine starts and serves only after
#   (`vllm/entrypoints/openai/api_server.py`, `create_server_socket`, `run_server`):
#   https://github.com/vllm-project/vllm
# - llm-d, readiness probes for model servers: https://llm-d.ai/docs/usage/readiness-probes
