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
# # Lab 299 - Errors during every rollout
#
# Every deploy of the chat service costs a burst of failed and cut-off answers, although the
# Deployment rolls one pod at a time and never drops below its replica count. You will
# reproduce a rolling update of two real model servers under streaming load, with the
# Kubernetes termination sequence played step by step; attribute every failed request to the
# step of the sequence that caused it; fix the server's SIGTERM handling and the manifest; and
# prove that a rollout then loses nothing. About 30 minutes; each rollout takes about 15 s,
# each `check()` less than a minute.

# %%
from labsupport import device

_ = device.banner(
    gpu="optional",
    stand_in="the tiny model decodes on the CPU with a 20 ms floor per step; the servers, "
    "signals, sockets, load balancer and Kubernetes sequence are the same",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV3 - chat-api: error burst during deploy** (14:02 UTC)
# >
# > | panel | value |
# > |---|---|
# > | gateway 5xx during the 14:02 deploy | 1.9 % of requests for 2 min, 0 % before and after |
# > | client SDK errors `APIConnectionError` ("peer closed connection") | 231 in those 2 min |
# > | `vllm:num_requests_running`, each old pod | ~30 to 0 in one scrape, as it turns Terminating |
# > | pod restarts, OOM kills, Xid errors | none |
# > | `kubectl rollout status deploy/llm` | "successfully rolled out", 2/2 available throughout |
# >
# > What changed: nothing in the model or the code. Every deploy does this, config-only ones
# > included; the team deploys twice a day and has started to deploy at night.
#
# The Deployment replaces one pod at a time and the dashboard never shows fewer than two
# available pods, yet users get errors and half-written answers at every deploy. Where do
# they come from, and what has to change so that a rollout loses nothing?

# %% [markdown]
# ## 2. Reproduce
#
# The lab's cluster (`labsupport.k8s`) plays Kubernetes over real processes: a Deployment
# controller with the real rolling-update arithmetic, a kubelet per pod (probes, preStop
# hooks, SIGTERM to the container's main process, SIGKILL to its process group when the grace
# period ends) and a Service balancer that, like kube-proxy, picks a pod for each new TCP
# connection and never cuts connections that are already open. When a pod is deleted, it
# leaves the endpoint list at once, but the balancer learns it only a few seconds later, as
# kube-proxy and gateways do in a real cluster.
#
# Each pod runs `srelab serve`, the lab's OpenAI-compatible server (a tiny transformer with
# continuous batching, FastAPI, uvicorn); like vLLM, it answers `/ready` and, on SIGTERM with
# `--shutdown-timeout 0` (vLLM's default), aborts every request in flight and exits.
# `StreamingLoad` runs six clients that stream completions of 16-96 tokens through the balancer,
# each starting the next request when the previous one ends, and records how each ended and
# which pod served it.
#
# Time runs ten times faster than in a cluster: every duration in the manifest (grace period,
# preStop sleep, probe period, the drain budget) is played at `TIME_SCALE = 0.1`, so a 30 s
# grace period takes 3 s here. The processes themselves run in real time; plots are in real
# seconds.
#
# This is the Deployment in production:

# %%
from labsupport import plots
from labsupport.k8s import rollout_load, rollout_plots, rollout_settings

print(rollout_settings.DEFAULT_MANIFEST)

# %% [markdown]
# Deploy it, start the load, roll the pods to a new revision, stop the load (about 15 s):

# %%
default = rollout_load.run_rollout(rollout_settings.DEFAULT_MANIFEST, arm="default")
print(default.summary())

# %%
_ = plots.show(rollout_plots.timelines([default]))

# %% [markdown]
# Each band is a pod: the two old ones at the top, the two that replace them below. Each line
# is one request on its client's lane, from its start to its end, coloured by how it ended.
# Every failure sits on an old pod, in a short window after that pod was deleted, and there is
# more than one kind: red streams cut in the middle, orange requests refused at once (`503`),
# purple connections reset before any answer.

# %% [markdown]
# ## 3. Diagnose
#
# The rollout's evidence is the event log (what `kubectl get events` shows, with the lab's
# supervisor adding the preStop and signal events that a kubelet only logs) and each pod's
# lifecycle, in seconds since the rollout started:

# %%
first_old = next(p for p in default.pods.values() if p.revision == "old")
for t, kind, name, reason, message in default.events:
    if t > -0.5 and (name == first_old.name or kind == "Service"):
        print(f"{t:6.2f} s  {kind:<8} {reason:<16} {message}")
print()
print(default.pod_table())

# %% [markdown]
# Read the old pods' rows. A deleted pod leaves the endpoint list at once (`deleted`), but the
# balancer stops routing to it only at `endpoint_removed`; SIGTERM comes at `deleted` (there
# is no preStop hook). Measure the gap:

# %%
for p in default.pods.values():
    if p.revision == "old":
        print(
            f"{p.name}: balancer stopped routing {p.endpoint_removed_s - p.deleted_s:.2f} s "
            f"after the deletion; SIGTERM {p.sigterm_s - p.deleted_s:.2f} s after it; exited "
            f"{p.exited_s - p.sigterm_s:.2f} s after SIGTERM with code {p.exit_code}"
        )

# %% [markdown]
# That is about 0.3 s here, 3 s in cluster time. What the sequence does to a request depends
# on when it reached its pod:
#
# - **cut at SIGTERM**: the request was streaming when its pod got SIGTERM, and the server's
#   default handler aborted it (a `Request aborted by the server` error event, no `[DONE]`).
# - **sent after SIGTERM**: the balancer still routed new connections to the pod after its
#   SIGTERM, because the endpoint removal had not reached it yet: the server refused them with
#   `503` while shutting down, or the connection was reset once the process had exited.
# - **killed at the deadline**: the request was still streaming when the grace period ran out
#   and the kubelet SIGKILLed the container (there was none in this run: look again in the
#   second run below).
#
# **Exercise 1 (graded).** Attribute every failed request to one of these causes, from the
# per-request records and the pods' lifecycles of the same run.


# %% tags=["exercise"]
def failure_causes(requests, pods) -> dict:
    """Why each failed request failed: {request index: cause}, one entry per failed request.

    requests: traffic.RequestRecord items with index, start_s, end_s, status ("ok" or how it
        failed) and backend (the name of the pod that got its connection, None if none did).
    pods: {pod name: PodLifecycle}, with sigterm_s and sigkill_s (None when it did not happen).
    Times are seconds since the rollout started. For each request whose status is not "ok",
    look at its pod and decide, in this order:
    - "sent_after_sigterm": it started at or after the pod's SIGTERM;
    - "killed_at_deadline": it started before the SIGTERM and ended at or after the SIGKILL;
    - "cut_at_sigterm": it started before the SIGTERM and ended at or after it;
    - "other": anything else (no pod, a pod that never got SIGTERM, ended before it).
    """
    # BEGIN SOLUTION
    causes = {}
    for r in requests:
        if r.status == "ok":
            continue
        pod = pods.get(r.backend)
        term = pod.sigterm_s if pod is not None else None
        kill = pod.sigkill_s if pod is not None else None
        if term is not None and r.start_s >= term:
            causes[r.index] = "sent_after_sigterm"
        elif term is not None and kill is not None and r.end_s >= kill:
            causes[r.index] = "killed_at_deadline"
        elif term is not None and r.end_s >= term:
            causes[r.index] = "cut_at_sigterm"
        else:
            causes[r.index] = "other"
    return causes
    # END SOLUTION


# %%
from collections import Counter

print("default:", dict(Counter(failure_causes(default.requests, default.pods).values())))

# %% [markdown]
# vLLM can drain since 2026: `--shutdown-timeout 30` makes it stop accepting and let
# in-flight requests finish for up to 30 s. Say the team sets that, and keeps the short grace
# period of 3 s its pods had when they served a fast classifier. A second rollout, with the
# server's own drain this time (about 15 s):

# %%
drain_only = rollout_load.run_rollout(
    rollout_settings.manifest_with(drain_s=30, grace_s=3), arm="drain 30 s, grace 3 s"
)
print(drain_only.summary())
print("drain only:", dict(Counter(failure_causes(drain_only.requests, drain_only.pods).values())))
_ = plots.show(rollout_plots.timelines([drain_only]))

# %% [markdown]
# Nothing is cut at SIGTERM any more, but new requests still reach the pod after its SIGTERM
# (the server refuses them with `503` while it drains, and once the pod is gone the
# connections are reset), and the grace period ends long before the drain could: the
# kubelet's SIGKILL (black line) cuts the streams that were still running. Draining is
# necessary, and not enough.
#
# Grade the diagnosis (the check runs both kinds of rollout again and compares your
# attribution with the event log of those runs; the fix checks fail until section 4 is done):

# %%
from labsupport import check

check("299")

# %% [markdown]
# ## 4. Fix
#
# One fix per cause, in the order Kubernetes plays them
# (kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination):
#
# 1. **Sent after SIGTERM** - keep the pod serving normally until the endpoint removal has
#    reached every load balancer: a `preStop` hook runs before SIGTERM, and the native
#    `sleep` action (`lifecycle.preStop.sleep.seconds`, KEP-3960, GA in Kubernetes 1.34; an
#    `exec` of `sleep` needs a `sleep` binary in the image, which distroless images lack) does
#    exactly that. It must cover the propagation you measured, with a margin.
# 2. **Cut at SIGTERM** - on SIGTERM, stop accepting (readiness turns `503`, for load
#    balancers that probe it) and let the streams in flight finish, for at most a drain
#    budget: vLLM's `--shutdown-timeout`, here long enough for the longest stream
#    (`rollout_settings.MAX_STREAM_S` = 30 s).
# 3. **Killed at the deadline** - `terminationGracePeriodSeconds` counts from the start of
#    the preStop hook, not from SIGTERM: it must be at least preStop + drain budget (the
#    Kubernetes default of 30 s is too short for that).
# 4. Keep `maxUnavailable: 0` (explicitly: the default 25 % rounds down to 0 only below four
#    replicas) so that capacity never drops during the rollout, and `maxSurge: 1`.
#
# **Exercise 2 (graded).** Write the server's SIGTERM handler. The server calls it on its
# event loop with a `ShutdownContext` (`labsupport.serving.shutdown`):
#
# | member | what it does |
# |---|---|
# | `ctx.stop_accepting()` | readiness `503`, new completion requests `503`; in-flight ones go on |
# | `ctx.in_flight()` | completion requests being served now |
# | `await ctx.wait_idle(timeout_s)` | True once nothing is in flight, False after `timeout_s` |
# | `ctx.abort_all()` | abort every in-flight request now |
# | `ctx.drain_timeout_s` | the drain budget: `--shutdown-timeout`, in real seconds |
#
# When the handler returns, the server aborts whatever is still in flight and exits.


# %% tags=["exercise"]
async def on_sigterm(ctx) -> None:
    """Called once when the server gets SIGTERM (see the table above).

    Drain: stop accepting new requests at once, then wait until the requests in flight have
    finished, but never longer than ctx.drain_timeout_s; return as soon as nothing is in
    flight (the pod keeps its GPU until the process exits).
    """
    # BEGIN SOLUTION
    ctx.stop_accepting()
    if not await ctx.wait_idle(ctx.drain_timeout_s):
        ctx.log(f"drain budget spent, {ctx.in_flight()} request(s) still in flight")
    # END SOLUTION


# %% [markdown]
# Try it on a simulated server first (a second, where a rollout takes fifteen): streams that
# end within the budget, streams that never end, and nothing in flight.

# %%
from labsupport.k8s import handler_trial

print(handler_trial.handler_problems(on_sigterm) or "no problems found")

# %% [markdown]
# **Exercise 3 (graded).** Write the manifest: start from the production one printed in
# section 2 and add the settings above. It is validated against the real Kubernetes schema
# (a misspelt field is an error, as with `kubectl apply --validate=strict`).


# %% tags=["exercise"]
def deployment_manifest() -> str:
    """The Deployment as YAML text: the production manifest of section 2, fixed.

    Keep its containers, probe and labels; add a preStop sleep that covers the endpoint
    propagation with a margin, vLLM's `--shutdown-timeout` (seconds) in the container args,
    a terminationGracePeriodSeconds of at least preStop + drain, and a RollingUpdate
    strategy with maxSurge 1 and maxUnavailable 0. All in manifest seconds.
    """
    # BEGIN SOLUTION
    return """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm
  labels: {app: llm}
spec:
  replicas: 2
  selector:
    matchLabels: {app: llm}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: llm}
    spec:
      terminationGracePeriodSeconds: 60
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.18.0
        command: [python, -m, labsupport.serving.serve_cli]
        args: [--port, $(PORT), --max-num-seqs, "32", --shutdown-timeout, "40"]
        ports:
        - {name: http, containerPort: 8000}
        readinessProbe:
          httpGet: {path: /ready, port: http}
          periodSeconds: 1
          failureThreshold: 1
        lifecycle:
          preStop:
            sleep: {seconds: 10}
        resources:
          limits: {nvidia.com/gpu: 1}
"""
    # END SOLUTION


# %%
print(rollout_settings.sizing_problems(deployment_manifest()) or "no problems found")
print(rollout_settings.settings(deployment_manifest()))

# %% [markdown]
# Grade the fix: the checks try your handler on the simulated server, check your manifest,
# and run a rollout under load with both (about a minute):

# %%
check("299")

# %% [markdown]
# ## 5. Verify
#
# The same rollout under the same load, with your handler in the real server processes and
# your manifest (about 15 s). The default run is the one from section 2.

# %%
fixed = rollout_load.run_rollout(deployment_manifest(), on_sigterm, arm="fixed")
for run in (default, drain_only, fixed):
    print(run.summary())

# %%
_ = plots.show(rollout_plots.timelines([default, fixed]))

# %% [markdown]
# In the fixed run each old pod keeps serving normally through its preStop sleep (grey) while
# the balancer catches up, so no new request reaches it after SIGTERM; the streams still
# running at SIGTERM (lines crossing the red one) finish, and the process exits a moment after
# the last of them, long before the grace period ends. The rollout takes longer: the second
# new pod starts only once the first old pod has exited and freed its GPU.

# %%
from labsupport import headline

_ = headline.record(
    "299",
    metric="requests completed during a rollout",
    before=default.success_pct,
    after=fixed.success_pct,
    unit="%",
    higher_is_better=True,
    device=fixed.device,
    failed_or_truncated_default=len(default.failed),
    failed_or_truncated_fixed=len(fixed.failed),
    requests_default=len(default.requests),
    requests_fixed=len(fixed.requests),
    sigkills_fixed=fixed.sigkills,
    old_pods_gone_s_default=round(default.drained_s, 1),
    old_pods_gone_s_fixed=round(fixed.drained_s, 1),
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** "Users see errors during every rollout of our LLM service. What do
# you do?"
#
# **Model answer.** First attribute the errors to the termination sequence: for each failed
# request, its pod, and whether it was in flight at SIGTERM, arrived after SIGTERM, or was
# still running when the grace period ended (gateway logs with upstream pod, pod events,
# server logs). Then fix each step. The server must drain on SIGTERM: flip readiness to
# failing, reject new requests, let in-flight ones finish within a budget, exit; for vLLM
# that is `--shutdown-timeout N` (its default, 0, aborts everything in flight). A `preStop`
# sleep longer than the endpoint propagation keeps the pod serving until kube-proxy, the
# ingress and the gateway have stopped sending it traffic. `terminationGracePeriodSeconds`
# must be at least preStop + drain, because it counts from the preStop hook. The rollout
# strategy keeps capacity (`maxUnavailable: 0`, `maxSurge: 1`), with readiness that means
# "model loaded", and clients retry what failed before the first token, idempotently (a
# request id), with backoff. Then prove it: a rollout under load with zero failures.
#
# **Where the classic answer falls short.**
#
# - *"Handle SIGTERM gracefully"* - vLLM did not, until 2026: `--shutdown-timeout` (PRs
#   #34730, #36666, announced for v0.18.0: check `vllm serve --help`) defaults to 0, which
#   aborts in-flight requests. Older versions need a preStop hook that waits for
#   `vllm:num_requests_running` to reach 0 before SIGTERM.
# - *"Drain on SIGTERM and you are done"* - not without the preStop sleep: the endpoint
#   removal and SIGTERM start at the same moment, and the balancers learn about the removal
#   seconds later (the `drain 30 s` run in section 3).
# - *"The grace period is the drain time"* - it starts with the preStop hook: with a 15 s
#   preStop, a 30 s grace leaves 15 s to drain, then SIGKILL. KServe uses 15 s + 45 s within
#   60 s (kserve#5496).
# - *Long streams outlast any grace period*: a 2,000-token reasoning answer at 40 ms a token
#   is 80 s. Cap `max_tokens`, size the budget from the p99 generation time, or let clients
#   resume; spot reclaims give 30 s-2 min whatever you set (lab 295).
# - *`maxSurge: 1` needs a spare GPU.* A surge pod that requests a GPU on a full node stays
#   Pending, and the rollout stalls until `progressDeadlineSeconds`. With one GPU per replica
#   and no headroom, the choice is `maxSurge: 0, maxUnavailable: 1` (a capacity dip during the
#   rollout) or keeping one GPU free. The terminating pod keeps its GPU until it exits, so a
#   long drain also slows every step of the rollout. Here is the fixed manifest on a node with
#   two GPUs (about 10 s):

# %%
stall = rollout_load.surge_without_spare_gpu(deployment_manifest(), node_gpus=2)
print(f"rollout: {stall['reason']}; pods still serving: {stall['serving_pods']}")
print("\n".join(stall["pending_events"] + stall["deployment_events"][-2:]))

# %% [markdown]
# **Follow-up questions an interviewer asks.**
#
# - How do you measure the endpoint propagation in your cluster? (Delete a pod under load and
#   compare its deletion timestamp with the last request it got, from the gateway's upstream
#   logs; EndpointSlice watch latency, kube-proxy's sync metrics.)
# - Clients keep HTTP/2 or keep-alive connections open. What happens to them during the drain?
#   (The balancer never moves an open connection: the server must close idle keep-alive
#   connections, with `Connection: close` or GOAWAY, once it stops accepting.)
# - Readiness flip or preStop sleep: why both? (The sleep covers endpoint propagation;
#   readiness covers load balancers that probe the pod themselves.)
# - How does a node drain or a spot reclaim differ from a rollout? (Same sequence, but nobody
#   waits for a new pod to be ready first: PodDisruptionBudgets and notice periods.)
# - What would you alert on? (Failed and truncated streams per deploy, SIGKILLs of pods at
#   the grace deadline: exit code 137 with reason `Error` after a deletion.)
#
# **References.**
#
# - Pod termination: https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination
# - Container hooks, the preStop sleep action: https://kubernetes.io/docs/concepts/containers/container-lifecycle-hooks/
#   and KEP-3960: https://www.kubernetes.dev/resources/keps/3960/
# - Rolling updates, maxSurge and maxUnavailable:
#   https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment
# - vLLM shutdown timeout: https://github.com/vllm-project/vllm/pull/36666 and the Kubernetes
#   guide's drain section: https://github.com/vllm-project/vllm/pull/43208
# - vLLM shutdown semantics RFC: https://github.com/vllm-project/vllm/issues/24885
# - KServe's drain settings: https://github.com/kserve/kserve/pull/5496
