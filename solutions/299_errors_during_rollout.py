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
# Deployment replaces its pods gradually and the dashboards never show a missing replica. You
# will reproduce a rolling update of real model servers under streaming load, with the
# Kubernetes sequence played step by step over real processes and signals; attribute every
# failed request from the event log; fix the server and the manifest; and prove that a rollout
# then loses nothing. About 45 minutes; each rollout takes about 30 s, each `check()` about a
# minute and a half.

# %%
from labsupport import device, session

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("299", seed=SEED)
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
# > | answers that stop mid-sentence (support tickets) | 40 during the deploy |
# > | pod restarts, OOM kills, Xid errors | none |
# > | `kubectl rollout status deploy/llm` | "successfully rolled out" |
# >
# > What changed: nothing in the model or the code. Every deploy does this, config-only ones
# > included; the team deploys twice a day and has started to deploy at night.
#
# What the team knows about its cluster and service (this variant's numbers):

# %%
from labsupport.scenarios import errors_during_rollout as scenario

v = scenario.variant(SEED)
print(scenario.incident_page(v))

# %% [markdown]
# Users get errors and half-written answers at every deploy, yet no pod crashed and the
# rollout reports success. Where do the errors come from, and what has to change so that a
# rollout loses nothing?

# %% [markdown]
# ## 2. Reproduce
#
# The lab's cluster (`labsupport.k8s`) plays Kubernetes over real processes: a Deployment
# controller with the real rolling-update arithmetic, a scheduler that counts the node's GPUs,
# a kubelet per pod (probes, lifecycle hooks, signals to the container's processes) and a
# Service balancer that, like kube-proxy, picks a pod for each new TCP connection from its own
# copy of the Service's endpoints and never cuts connections that are already open.
#
# Each pod runs `srelab serve`, the lab's OpenAI-compatible server (a tiny transformer with
# continuous batching, FastAPI, uvicorn), with vLLM's command-line flags and behaviour. The
# load is this variant's clients, each streaming one completion after another through the
# balancer; each request is recorded with how it ended and which pod served it.
#
# Time runs ten times faster than in a cluster: every duration in the manifest (grace period,
# probe period, hooks, timeouts) is played at `TIME_SCALE = 0.1`, so 30 s in the manifest
# take 3 s here. The processes themselves run in real time; plots and tables are in real
# seconds.
#
# This is the Deployment in production:

# %%
print(v.production)

# %% [markdown]
# Deploy it, start the load, roll the pods to a new revision, stop the load (about 30 s):

# %%
from labsupport import plots
from labsupport.scenarios.errors_during_rollout import load
from labsupport.scenarios.errors_during_rollout import plots as rollout_plots

production = load.run_rollout(v.production, variant=v, arm="production")
print(production.summary())

# %%
_ = plots.show(rollout_plots.timelines([production]))

# %% [markdown]
# Each band is a pod: the old ones at the top, their replacements below. Each line is one
# request on its client's lane, from its start to its end, coloured by how it ended: red
# streams cut in the middle (`truncated`), orange requests answered with an error status
# (`http_error`), purple connections refused or reset before any answer
# (`connection_error`). Every failure sits on an old pod, in a short window after that pod
# was deleted.

# %% [markdown]
# ## 3. Diagnose
#
# The rollout's evidence is the event log (what `kubectl get events` shows, with the lab's
# supervisor adding the signal events that a kubelet only logs) and each pod's lifecycle, in
# seconds since the rollout started. The events of the first old pod and of the Service:

# %%
first_old = min(
    (p for p in production.pods.values() if p.revision == "old"),
    key=lambda p: p.deleted_s if p.deleted_s is not None else float("inf"),
)
for line in production.event_lines():
    if first_old.name in line or " Service " in line or " Deployment " in line:
        print(line)
print()
print(production.pod_table())

# %% [markdown]
# The pod table's columns: `created` (scheduled), `endpoint_added` / `endpoint_removed` (the
# balancer's own routing table started / stopped sending it new connections: the Service's
# `EndpointsSynced` events), `deleted` (the Deployment deleted it: it turned Terminating and
# left the Service's EndpointSlice), `pre_stop` (a lifecycle hook ran, if the container has
# one), `sigterm` and `sigkill` (signals the kubelet sent), `exited` (the process ended) and
# its exit code.
#
# **Exercise 1 (graded).** Say why each failed request failed, from the per-request records
# and the pods' lifecycles of the same run. There are three ways a rollout can lose a request
# on its way out, named for the signal that decides them; a request that fits none is
# `"other"`.


# %% tags=["exercise"]
def failure_causes(requests, pods) -> dict:
    """Why each failed request failed: {request index: cause}, one entry per failed request.

    requests: traffic.RequestRecord items with index, start_s, end_s, status ("ok" or how it
        failed) and backend (the name of the pod that got its connection, None if none did).
    pods: {pod name: PodLifecycle}, with sigterm_s and sigkill_s (None when it did not happen).
    Times are seconds since the rollout started. Leave out requests whose status is "ok".
    The causes, which exclude each other:
    - "sent_after_sigterm": the request was opened (start_s) at or after its pod's SIGTERM;
    - "killed_at_deadline": it was already running at its pod's SIGTERM and still running
      when the pod was SIGKILLed (it ended at or after sigkill_s);
    - "cut_at_sigterm": it was already running at its pod's SIGTERM, ended at or after it,
      and there was no SIGKILL before its end;
    - "other": anything else (no pod, a pod that never got SIGTERM, ended before it).
    """
    # BEGIN SOLUTION
    causes = {}
    for r in requests:
        if r.status == "ok":
            continue
        pod = pods.get(r.backend) if r.backend is not None else None
        term = pod.sigterm_s if pod is not None else None
        kill = pod.sigkill_s if pod is not None else None
        if term is None:
            causes[r.index] = "other"
        elif r.start_s >= term:
            causes[r.index] = "sent_after_sigterm"
        elif kill is not None and r.end_s >= kill:
            causes[r.index] = "killed_at_deadline"
        elif r.end_s >= term:
            causes[r.index] = "cut_at_sigterm"
        else:
            causes[r.index] = "other"
    return causes
    # END SOLUTION


# %% [markdown]
# Stuck? `hint("299", 1, "failure_causes")` shows the first of three hints (the transcript
# records which you used).

# %%
from collections import Counter

from labsupport import hint  # noqa: F401  (hint("299", 1, "failure_causes"))

print("production:", dict(Counter(failure_causes(production.requests, production.pods).values())))

# %% [markdown]
# The staging cluster runs the same image with the termination settings of an older
# manifest. Its rollout, under the same load (about 30 s; skipped in the test suite's
# shorter run):

# %%
staging = None
if session.scale() == "full":
    print(v.staging)
    staging = load.run_rollout(v.staging, variant=v, arm="staging")
    print(staging.summary())
    print("staging:", dict(Counter(failure_causes(staging.requests, staging.pods).values())))
    _ = plots.show(rollout_plots.timelines([staging]))

# %% [markdown]
# Grade the diagnosis: the check compares your attribution with the event log on made-up
# rollouts built to tell the causes apart and on a fresh rollout of this variant's production
# Deployment (the fix checks fail until section 4 is done):

# %%
from labsupport import check

check("299")

# %% [markdown] tags=["reveal"]
# ### What happened
#
# When the Deployment deletes a pod, two things start at the same moment
# ([pod termination](https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination)):
# the pod leaves the Service's EndpointSlice, and the kubelet starts stopping the container.
# Nothing makes the first finish before the second: kube-proxy on every node, ingress
# controllers and gateways learn of the removal seconds later, when their watch delivers it
# and they resync. Here that propagation takes a few hundred milliseconds (a few seconds in
# manifest time; see the gap between `deleted` and `endpoint_removed`), and the kubelet sends
# SIGTERM at `deleted` because there is no preStop hook. So:
#
# - **sent after SIGTERM**: for the whole propagation delay the balancer keeps opening new
#   connections to a pod that has already been told to stop. The server refuses them (`503`
#   while it shuts down) or, once it has exited, the connection is refused or reset.
# - **cut at SIGTERM**: vLLM's default on SIGTERM (`--shutdown-timeout 0`) is to abort every
#   request in flight and exit. Streams still running on the pod end with an error event
#   (then `[DONE]`, as vLLM sends it) before their answer is complete.
# - **killed at the deadline**: a server that does drain its streams (vLLM's
#   `--shutdown-timeout N`) is still SIGKILLed when the grace period ends, and the grace
#   period counts from the start of the termination, preStop hook included. A grace shorter
#   than the streams cuts them there.
#
# The dashboards saw none of it: the new pod was ready before each old one was deleted, so
# availability never dropped, and the failures are on pods that are already gone.

# %%
for name, run in (("production", production), ("staging", staging)):
    if run is not None:
        print(run.settings_line())
        print(name, dict(Counter(failure_causes(run.requests, run.pods).values())))

# %% [markdown]
# ## 4. Fix
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
# | `ctx.drain_timeout_s` | the server's budget on SIGTERM: `--shutdown-timeout`, in real seconds |
#
# When the handler returns, the server aborts whatever is still in flight and exits.

# %% [markdown] tags=["reveal"]
# One fix per cause, in the order Kubernetes plays them. For the handler: on SIGTERM, stop
# accepting (readiness turns `503`, for load balancers that probe it) and let the streams in
# flight finish, for at most the budget; return as soon as nothing is in flight, because the
# pod keeps its GPU until its process exits. That is what vLLM's `--shutdown-timeout N` does
# since 2026 (PRs #34730 and #36666).


# %% tags=["exercise"]
async def on_sigterm(ctx) -> None:
    """Called once when the server gets SIGTERM (see the table above).

    Stop taking new requests at once, then let the requests in flight finish, but never for
    longer than ctx.drain_timeout_s; return as soon as nothing is in flight.
    """
    # BEGIN SOLUTION
    ctx.stop_accepting()
    if not await ctx.wait_idle(ctx.drain_timeout_s):
        ctx.log(f"budget spent, {ctx.in_flight()} request(s) still in flight")
    # END SOLUTION


# %% [markdown]
# Try it on a simulated server first (a few seconds, where a rollout takes thirty): streams
# that end within the budget, streams that never end, and nothing in flight.

# %%
from labsupport.scenarios.errors_during_rollout import handler_trial

print(handler_trial.handler_problems(on_sigterm) or "no problems found")

# %% [markdown]
# **Exercise 3 (graded).** Write the manifest, as a function of what you know about a cluster,
# so that it fits this variant and any other: production's Deployment (YAML), how long the
# balancer kept routing to a deleted pod (`propagation_s`, manifest seconds, measured below),
# the slowest full answer (`longest_answer_s`, from the incident facts) and the node's GPUs.
# It is validated against the real Kubernetes schema (a misspelt field is an error, as with
# `kubectl apply --validate=strict`). Edit the YAML as a dict (`yaml.safe_load`, change,
# `yaml.safe_dump`); `settings.manifest_with(production, ...)` from the scenario can do it
# for you.

# %% [markdown] tags=["reveal"]
# The settings, each for one cause:
#
# 1. **Sent after SIGTERM** - keep the pod serving normally until the endpoint removal has
#    reached every load balancer: a `preStop` hook runs before SIGTERM, and the native
#    `sleep` action (`lifecycle.preStop.sleep.seconds`, KEP-3960, GA in Kubernetes 1.34; an
#    `exec` of `sleep` needs a `sleep` binary in the image, which distroless images lack) does
#    exactly that. It must cover the propagation you measured, with a margin of a couple of
#    seconds, and not much more: every step of the rollout waits for it.
# 2. **Cut at SIGTERM** - the handler above, with a budget (`--shutdown-timeout`) that covers
#    the longest answer.
# 3. **Killed at the deadline** - `terminationGracePeriodSeconds` counts from the start of
#    the preStop hook, not from SIGTERM: at least preStop + `--shutdown-timeout`, plus a
#    little for the process to exit. Not an hour: a pod that hangs keeps its GPU until then.
# 4. The strategy: `maxUnavailable: 0, maxSurge: 1` keeps capacity, but only if the node has
#    a free GPU for the surge pod; with none, the surge pod stays Pending and the rollout
#    stalls, and the answer is `maxSurge: 0, maxUnavailable: 1`. Set both explicitly (the
#    25 % defaults round differently with the replica count).

# %%
old = [p for p in production.pods.values() if p.revision == "old"]
for p in old:
    print(
        f"{p.name}: the balancer stopped routing {p.endpoint_removed_s - p.deleted_s:.2f} s "
        f"after the deletion; SIGTERM {p.sigterm_s - p.deleted_s:.2f} s after it"
    )
propagation_s = max(p.endpoint_removed_s - p.deleted_s for p in old) / load.TIME_SCALE
print(f"propagation: {propagation_s:.1f} s in manifest time")

# %% tags=["exercise"]
import math

import yaml


def fixed_manifest(
    production: str, propagation_s: float, longest_answer_s: float, node_gpus: int
) -> str:
    """Production's Deployment (YAML text), changed so that a rollout loses nothing there.

    The cluster: load balancers keep routing to a deleted pod for propagation_s; an answer
    takes up to longest_answer_s; the node has node_gpus GPUs, every replica takes one.
    Nothing may reach a pod after its SIGTERM, nothing in flight may be cut or killed,
    capacity stays as high as the node allows, and no setting is longer than it needs to
    be. Keep production's replicas, containers, probe and labels; set vLLM's
    `--shutdown-timeout` once, in whole seconds, and the rolling-update strategy explicitly.
    All in manifest seconds.
    """
    # BEGIN SOLUTION
    obj = yaml.safe_load(production)
    pod = obj["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pre_stop_s = math.ceil(propagation_s) + 2
    budget_s = math.ceil(longest_answer_s)
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop_s}}}
    args, kept = [str(a) for a in container.get("args", [])], []
    while args:  # drop any --shutdown-timeout production set, in either form
        arg = args.pop(0)
        if arg == "--shutdown-timeout":
            args.pop(0)
        elif not arg.startswith("--shutdown-timeout="):
            kept.append(arg)
    container["args"] = [*kept, "--shutdown-timeout", str(budget_s)]
    pod["terminationGracePeriodSeconds"] = pre_stop_s + budget_s + 5
    spare = node_gpus - obj["spec"]["replicas"]
    surge, unavailable = (1, 0) if spare >= 1 else (0, 1)
    obj["spec"]["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
    }
    return yaml.safe_dump(obj, sort_keys=False)
    # END SOLUTION


# %%
from labsupport.scenarios.errors_during_rollout import settings

fixed_yaml = fixed_manifest(v.production, propagation_s, v.longest_answer_s, v.node_gpus)
print(fixed_yaml)
print({k: settings.settings(fixed_yaml)[k] for k in ("pre_stop_s", "drain_s", "grace_s")})

# %% [markdown]
# Grade the fix: the checks try your handler on the simulated server, your manifest function
# on this cluster and on three others, and run a rollout under load with both (about a
# minute and a half):

# %%
check("299")

# %% [markdown]
# ## 5. Verify
#
# The same rollout under the same load, with your handler in the real server processes and
# your manifest (about 30 s). The production run is the one from section 2.

# %%
fixed = load.run_rollout(fixed_yaml, on_sigterm, variant=v, arm="fixed")
for run in (production, staging, fixed):
    if run is not None:
        print(run.summary())
        print("   ", run.settings_line())

# %%
_ = plots.show(rollout_plots.timelines([production, fixed], settings=True))

# %% [markdown]
# In the fixed run each old pod keeps serving normally through its preStop sleep (grey) while
# the balancer catches up, so no new request reaches it after SIGTERM; the streams still
# running at SIGTERM (lines crossing the red one) finish, and the process exits once they have
# and the server has shut down, long before the grace period ends. The next new pod starts
# only once an old pod has exited and freed its GPU: a long drain slows every step.

# %%
from labsupport import headline

_ = headline.record(
    "299",
    metric="requests lost (failed or cut off) during a rollout",
    before=len(production.failed),
    after=len(fixed.failed),
    unit="requests",
    device=fixed.device,
    variant=SEED,
    success_pct_production=round(production.success_pct, 1),
    success_pct_fixed=round(fixed.success_pct, 1),
    requests_production=len(production.requests),
    requests_fixed=len(fixed.requests),
    sigkills_fixed=fixed.sigkills,
    old_pods_gone_s_production=round(production.drained_s, 1),
    old_pods_gone_s_fixed=round(fixed.drained_s, 1),
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** "Users see errors during every rollout of our LLM service. What do
# you do?"
#
# **Model answer.** First attribute the errors to the termination sequence: for each failed
# request, its pod, and whether it arrived after SIGTERM, was in flight at SIGTERM, or was
# still running when the grace period ended (gateway logs with the upstream pod, pod events,
# server logs). Then fix each step. The server must drain on SIGTERM: flip readiness to
# failing, reject new requests, let in-flight ones finish within a budget, exit; for vLLM
# that is `--shutdown-timeout N` (its default, 0, aborts everything in flight). A `preStop`
# sleep a little longer than the endpoint propagation keeps the pod serving until kube-proxy,
# the ingress and the gateway have stopped sending it traffic. `terminationGracePeriodSeconds`
# must be at least preStop + drain, because it counts from the preStop hook. The rollout
# strategy keeps capacity where the node allows it (`maxUnavailable: 0`, `maxSurge: 1` needs a
# free GPU), with readiness that means "model loaded" and does not flap (a failure threshold
# above 1), and clients retry what failed before the first token, idempotently (a request
# id), with backoff. Then prove it: a rollout under load with zero failures.
#
# **Where the classic answer falls short.**
#
# - *"Handle SIGTERM gracefully and raise `terminationGracePeriodSeconds` (say 120 s)"* - the
#   classic answer assumes the pod leaves the load balancers before SIGTERM. It does not:
#   endpoint removal and SIGTERM start together, and the balancers learn of the removal
#   seconds later. Without a preStop sleep a draining server refuses (or, once gone, resets)
#   every request routed to it in that window, whatever the grace period.
# - *"Handle SIGTERM gracefully"* - vLLM did not, until 2026: `--shutdown-timeout` (PRs
#   #34730, #36666, announced for v0.18.0: check `vllm serve --help`) defaults to 0, which
#   aborts in-flight requests. Older versions need a preStop hook that waits for
#   `vllm:num_requests_running` to reach 0 before SIGTERM.
# - *"The grace period is the drain time"* - it starts with the preStop hook ("the Pod's
#   termination grace period countdown begins before the PreStop hook is executed", the
#   API reference of `lifecycle.preStop`): with a 15 s preStop, a 30 s grace leaves 15 s to
#   drain, then SIGKILL. KServe uses 15 s + 45 s within 60 s (kserve#5496).
# - *"Just make the grace period an hour"* - it only bounds a pod that hangs, which then keeps
#   its GPU for the hour and stalls the next step of the rollout; size it from preStop + drain.
# - *Long streams outlast any grace period*: a 2,000-token reasoning answer at 40 ms a token
#   is 80 s. Cap `max_tokens`, size the budget from measured generation times (llm-d's guides
#   use 30 s where 500 tokens take ~24 s, 300 s for a 259 s maximum: llm-d#1653), or let
#   clients resume; spot reclaims give 30 s-2 min whatever you set (lab 295).
# - *`maxSurge: 1` needs a spare GPU.* A surge pod that requests a GPU on a full node stays
#   Pending, and the rollout stalls until `progressDeadlineSeconds`. With one GPU per replica
#   and no headroom, the choice is `maxSurge: 0, maxUnavailable: 1` (a capacity dip during the
#   rollout) or keeping one GPU free. The terminating pod keeps its GPU until it exits, so a
#   long drain also slows every step of the rollout. Here is the fixed manifest with
#   `maxSurge: 1` on a node with one GPU per replica (about 15 s; skipped in the test suite's
#   shorter run):

# %%
if session.scale() == "full":
    stall = load.surge_without_spare_gpu(fixed_yaml, variant=v)
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
# - Why does this manifest's readiness probe have `failureThreshold: 3`? (One slow answer
#   to one probe should not take a serving pod out of the Service: lab 278.)
# - How does a node drain or a spot reclaim differ from a rollout? (Same sequence, but nobody
#   waits for a new pod to be ready first: PodDisruptionBudgets and notice periods.)
# - What would you alert on? (Failed and truncated streams per deploy, SIGKILLs of pods at
#   the grace deadline: exit code 137 with reason `Error` after a deletion.)
#
# **References.**
#
# - Pod termination: https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination
# - Container hooks, the preStop sleep action: https://kubernetes.io/docs/concepts/containers/container-lifecycle-hooks/
#   and KEP-3960 (alpha 1.29, beta 1.30, stable 1.34): https://www.kubernetes.dev/resources/keps/3960/
# - `lifecycle.preStop` in the API reference (the grace period counts from the hook):
#   https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#lifecycle
# - Rolling updates, maxSurge and maxUnavailable:
#   https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment
# - vLLM shutdown timeout: https://github.com/vllm-project/vllm/pull/34730, re-applied in
#   https://github.com/vllm-project/vllm/pull/36666, and the Kubernetes guide's drain section
#   (`terminationGracePeriodSeconds >= preStop sleep + --shutdown-timeout`):
#   https://github.com/vllm-project/vllm/pull/43208
# - vLLM shutdown semantics RFC: https://github.com/vllm-project/vllm/issues/24885
# - KServe's drain settings: https://github.com/kserve/kserve/pull/5496; llm-d's, sized from
#   benchmarks: https://github.com/llm-d/llm-d/pull/1653
