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
# # Lab 282 - Pod pending while a GPU looks idle
#
# The GPU dashboard shows idle H100s, and yet the new llm-server replica has been `Pending`
# for minutes. You will read what Kubernetes says about it (the scheduler's event, the pod,
# the nodes, and what DCGM says the GPUs do), name the cause and the object that proves it,
# then write the manifest that schedules, without evicting anybody else's work. About 25
# minutes; the code runs in seconds.

# %%
from labsupport import device, session
from labsupport.scenarios import pod_pending_gpu_idle as scenario

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("282", seed=SEED)
variant = scenario.variant(SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="none",
    stand_in="kube-scheduler cannot run here: labsupport.k8s.scheduling is a stand-in that "
    "follows its filter plugins, reason strings, scoring, preemption and FailedScheduling "
    "message (ported and tested against Kubernetes' own plugin test tables); manifests are "
    "validated against the real Kubernetes 1.37 schema; the DCGM readings are generated",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV3 - llm-server: replicas below desired for 6 minutes** (14:12 UTC)
# >
# > | panel | value |
# > |---|---|
# > | `kube_deployment_status_replicas_unavailable{deployment="llm-server"}` | 1 |
# > | `DCGM_FI_DEV_GPU_UTIL` on the serving pool | several GPUs at 0% |
# > | queue depth | rising; p99 TTFT 3x the SLO |
# >
# > Someone scaled llm-server up by one replica to absorb the traffic. "There are idle GPUs
# > right there on the dashboard, why does the pod not start?"
#
# The cluster: a CPU node, the serving pool's H100 nodes (label `pool=serving`), and one burst
# node (label `pool=burst`, tainted `pool=burst:NoSchedule`). The runbook lets serving pods
# onto the burst node only while a serving node is out of service.

# %% [markdown]
# ## 2. Reproduce
#
# The Deployment as applied:

# %%
from labsupport.scenarios.pod_pending_gpu_idle import cluster, evidence

print(cluster.manifest(variant))

# %% [markdown]
# The scheduler (the lab's stand-in for kube-scheduler) tries the new replica every minute for
# six minutes, as kube-scheduler's back-off and periodic flush would. What an on-call engineer
# sees, `kubectl get pods -A -o wide` and `kubectl describe pod`:

# %%
incident = cluster.incident(variant)
found = evidence.collect(incident, SEED)
print(found["get_pods"])
print(found["describe_pod"])

# %% [markdown]
# Read the event: `0/N nodes are available:` then, for each reason, how many nodes failed
# with it (each node is counted once, under the first filter that turned it down), then what
# preemption (the scheduler's PostFilter) found. The same reason can have different causes:
# the nodes tell you which. `kubectl describe node` for the GPU nodes:

# %%
print(found["describe_nodes"])

# %% [markdown]
# And the GPUs, as the DCGM exporter reports them (one row per GPU; the pod column is the
# exporter's Kubernetes mapping, the last column the last XID error, 0 when none):

# %%
print(found["gpu_utilization"])

# %% [markdown]
# Before you read on: which nodes could take the pod if one thing were different, and what is
# that thing? Which GPUs are idle, and why can the pod not have them?

# %% [markdown]
# ## 3. Diagnose
#
# **Exercise 1 (graded).** Write `diagnose(evidence)`: from the texts above (the same dict,
# `found`), the cause and the object that proves it. The check runs it on this incident and on
# four other incidents of the same cluster, each held up by a different cause. The causes it
# can name (`scenario.CAUSES`): `idle_pod`, `untolerated_taint`, `unhealthy_device`,
# `mig_resource_name`, `selector_typo`.
# `hint("282", 1, "diagnose")` (up to 3, after `from labsupport import hint`) gives a hint
# and notes it in your transcript.

# %% tags=["exercise"]
import yaml


def diagnose(evidence: dict) -> dict:
    """{"cause": one of scenario.CAUSES, "culprit": the object that proves it, as printed}.

    evidence: {"manifest", "get_pods", "describe_pod", "describe_nodes", "gpu_utilization"},
    all text. The culprit, per cause: "idle_pod" -> the pod holding the GPUs, "namespace/name";
    "untolerated_taint" -> the node taint, "key=value:Effect" as describe prints it;
    "unhealthy_device" -> the node's name; "mig_resource_name" -> the resource name the nodes
    advertise; "selector_typo" -> the label the nodes carry, "key=value". Only the serving
    pool (label pool=serving) counts: the burst node is kept for emergencies.
    """
    # BEGIN SOLUTION
    spec = yaml.safe_load(evidence["manifest"])["spec"]["template"]["spec"]
    selector = spec.get("nodeSelector") or {}
    tolerations = spec.get("tolerations") or []
    limits = spec["containers"][0]["resources"].get("limits") or {}
    nodes = [_node(block) for block in evidence["describe_nodes"].split("\nName:")]
    serving = [n for n in nodes if n["labels"].get("pool") == "serving"]
    for key, value in selector.items():
        if not any(n["labels"].get(key) == value for n in serving):
            carried = sorted({n["labels"][key] for n in serving if key in n["labels"]})
            return {"cause": "selector_typo", "culprit": f"{key}={carried[0]}"}
    for n in serving:
        for taint in n["taints"]:
            if taint.endswith((":NoSchedule", ":NoExecute")) and not _tolerated(taint, tolerations):
                return {"cause": "untolerated_taint", "culprit": taint}
    devices = [r for r in limits if r.startswith("nvidia.com/")]
    for n in serving:
        if any(n["allocatable"].get(r, 0) == 0 for r in devices):
            offered = [r for r, v in n["allocatable"].items() if "/mig-" in r and v > 0]
            if offered:
                return {"cause": "mig_resource_name", "culprit": offered[0]}
    for n in serving:
        for r in devices:
            if n["capacity"].get(r, 0) > n["allocatable"].get(r, 0):
                return {"cause": "unhealthy_device", "culprit": n["name"]}
    busy: dict[str, list[int]] = {}
    serving_names = {n["name"] for n in serving}
    for row in evidence["gpu_utilization"].splitlines()[1:]:
        node, _, pod, util = row.split()[:4]
        if pod != "<none>" and node in serving_names:
            busy.setdefault(pod, []).append(int(util))
    idle = [pod for pod, utils in busy.items() if max(utils) == 0]
    return {"cause": "idle_pod", "culprit": idle[0] if idle else ""}


def _node(block: str) -> dict:
    """One `kubectl describe node` block: name, labels, taints, capacity, allocatable."""
    lines = block.splitlines()
    node = {"name": lines[0].removeprefix("Name:").strip(), "labels": {}, "taints": [],
            "capacity": {}, "allocatable": {}}  # fmt: skip
    section = ""
    for line in lines[1:]:
        if not line.strip():
            continue
        if not line.startswith(" "):
            section, _, rest = line.partition(":")
            rest = rest.strip()
        else:
            rest = line.strip()
        if not rest or rest == "<none>":
            continue
        if section == "Labels":
            key, _, value = rest.partition("=")
            node["labels"][key] = value
        elif section == "Taints":
            node["taints"].append(rest)
        elif section in ("Capacity", "Allocatable"):
            name, _, value = rest.rpartition(":")
            value = value.strip()
            node[section.lower()][name] = int(value) if value.isdigit() else value
    return node


def _tolerated(taint: str, tolerations: list[dict]) -> bool:
    kv, _, effect = taint.rpartition(":")
    key, _, value = kv.partition("=")
    for t in tolerations:
        if t.get("effect") and t["effect"] != effect:
            continue
        if t.get("key") and t["key"] != key:
            continue
        if t.get("operator") == "Exists" or str(t.get("value", "")) == value:
            return True
    return False
    # END SOLUTION


# %%
from labsupport import check

answer = diagnose(found)
print(answer)

# %% [markdown]
# Grade the diagnosis (the fix check fails until you write `fixed_manifest` in section 4):

# %%
check("282")

# %% [markdown] tags=["reveal"]
# **What happened in this variant.** The scheduler's filters ran on every node in a fixed
# order (NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodeResourcesFit: the
# default profile), and each node is counted under the first one that failed. Then
# DefaultPreemption looked for lower-priority pods to evict on the nodes where that could
# help: `Preemption is not helpful for scheduling` for nodes whose failure no eviction can
# fix (a taint, a label, a request above the node's allocatable), `No preemption victims
# found for incoming pod` where every pod has the new pod's priority or more.

# %% tags=["reveal"]
print("cause:", variant.cause)
print("the last event:", incident.message)

# %% [markdown] tags=["reveal"]
# The five causes this cluster can have, and the evidence that tells them apart:
#
# - **The idle pod holding the GPUs**: `Insufficient nvidia.com/gpu`, no preemption victims;
#   on the node a priority-0 pod holds the GPUs, DCGM shows 0% util and a few hundred MiB.
# - **An untolerated taint**: `node(s) had untolerated taint(s)` on the serving nodes; the
#   taint's value differs from the pod's toleration.
# - **An unhealthy device**: `Insufficient nvidia.com/gpu`, as for the idle pod; Capacity 8,
#   Allocatable 7 (the device plugin reported one GPU unhealthy), DCGM shows XID 79.
# - **A MIG resource name**: `Insufficient nvidia.com/gpu`, preemption not helpful (the request
#   is above allocatable); the node has `nvidia.com/gpu: 0` and advertises
#   `nvidia.com/mig-<profile>` (mig.strategy=mixed).
# - **A selector typo**: `didn't match Pod's node affinity/selector` on every GPU node; the
#   label's real value is on the nodes.
#
# Since Kubernetes 1.35 the taint reason no longer names the taint (kubernetes#134740), so
# `kubectl describe node` is where you read it.

# %% [markdown]
# ## 4. Fix
#
# **Exercise 2 (graded).** Return the fixed Deployment (YAML) for a diagnosis. Keep the same
# image, replicas and number of devices; the check applies it to a fresh copy of the cluster
# (validated against the strict Kubernetes schema first), then looks at where the new replica
# went and what was evicted for it. `hint("282", 1, "fixed_manifest")` if you want one.


# %% tags=["exercise"]
def fixed_manifest(manifest: str, diagnosis: dict) -> str:
    """The llm-server Deployment, fixed for `diagnosis` ({"cause", "culprit"} as diagnose
    returns them), as YAML.

    The new replica must schedule on a serving-pool node (label pool=serving), or on the burst
    node (pool=burst, tainted pool=burst:NoSchedule) only while a serving node has a failed
    device. Nothing but an idle pod may be evicted for it. The priority classes of the cluster:
    llm-serving (1000), batch (0).
    """
    # BEGIN SOLUTION
    obj = yaml.safe_load(manifest)
    spec = obj["spec"]["template"]["spec"]
    cause, culprit = diagnosis["cause"], diagnosis["culprit"]
    if cause == "idle_pod":
        spec["priorityClassName"] = "llm-serving"
    elif cause == "untolerated_taint":
        kv, _, effect = culprit.rpartition(":")
        key, _, value = kv.partition("=")
        spec["tolerations"] = [t for t in spec.get("tolerations", []) if t.get("key") != key]
        spec["tolerations"].append({"key": key, "operator": "Equal", "value": value,
                                    "effect": effect})  # fmt: skip
    elif cause == "unhealthy_device":
        spec.setdefault("nodeSelector", {})["pool"] = "burst"
        spec.setdefault("tolerations", []).append(
            {"key": "pool", "operator": "Equal", "value": "burst", "effect": "NoSchedule"}
        )
    elif cause == "mig_resource_name":
        limits = spec["containers"][0]["resources"]["limits"]
        limits[culprit] = limits.pop("nvidia.com/gpu")
    elif cause == "selector_typo":
        key, _, value = culprit.partition("=")
        spec["nodeSelector"][key] = value
    return yaml.safe_dump(obj, sort_keys=False)
    # END SOLUTION


# %%
fixed = fixed_manifest(cluster.manifest(variant), answer)
outcome = cluster.apply(variant, fixed)
print("errors:", outcome.errors or "none")
print("node:", outcome.node, "pool:", outcome.pool or "-")
print("evicted:", ", ".join(outcome.evicted) or "nothing")
print("last event:", outcome.message)

# %%
check("282")

# %% [markdown]
# ## 5. Verify
#
# The headline: llm-server replicas running, as deployed vs with the fix, on the same cluster
# in this run.

# %%
from labsupport import headline, plots

before_running = incident.replicas_running
after_running = outcome.replicas_running
_ = plots.show(
    plots.before_after(
        {"as deployed": before_running, "fixed": after_running},
        unit="replicas",
        title="llm-server replicas running",
    )
)
_ = headline.record(
    "282",
    metric="llm-server replicas running",
    before=before_running,
    after=after_running,
    unit="replicas",
    higher_is_better=True,
    seed=SEED,
    cause=variant.cause,
    node=outcome.node,
    evicted=list(outcome.evicted),
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** A pod that requests GPUs is Pending while dashboards show idle
# GPUs. How do you find out why?
#
# **Model answer.** Start from the pod's `FailedScheduling` event: it counts nodes per reason,
# each node under the first filter plugin that rejected it, and then says what preemption
# found. Then read the nodes, because one reason has several causes: `kubectl describe node`
# for Capacity vs Allocatable (the device plugin subtracts unhealthy devices from
# allocatable), the resource names (a MIG node in the mixed strategy advertises
# `nvidia.com/mig-<profile>` and no `nvidia.com/gpu`), taints vs the pod's tolerations, labels
# vs its nodeSelector/affinity, and who holds the devices (Non-terminated Pods; DCGM per-pod
# utilization shows a pod holding GPUs at 0%). The scheduler counts requests, not usage: a GPU
# at 0% that is allocated is not free. Fix the one thing: a priority class so the scheduler
# preempts the idle low-priority pod (and nothing else), the exact toleration, the MIG
# resource name, the label value; for a failed device, repair or drain the node and, until
# then, run where the runbook allows.
#
# **Where the classic answer is incomplete.** "Not enough GPUs: add nodes" ignores that the
# message's counts are per node and per first failing filter: three `Insufficient
# nvidia.com/gpu` can mean three nodes full of working pods, an idle notebook, or a dead GPU.
# "Tolerate everything" or `nodeName:` make the pod start somewhere, not where it should
# (`nodeName` even skips the scheduler; the kubelet then rejects the pod when the devices are
# not there). Lowering the GPU request changes the model's parallelism.
#
# **Follow-up questions.**
#
# - Why did preemption say "not helpful" on some nodes and "no victims" on others?
#   (Unresolvable filter statuses vs equal-priority pods.)
# - What does the device plugin do when a GPU reports XID 79, and what shows it?
# - How would you prevent idle notebooks from holding serving GPUs? (Priority classes,
#   quotas, an idle-culler, separate pools.)
# - Why does kube-scheduler report a request above a node's allocatable as unresolvable?
#
# **References.**
#
# - kube-scheduler plugins and their reasons: `pkg/scheduler/framework/plugins/`
#   (tainttoleration, nodeaffinity, noderesources/fit.go `Unresolvable`), the message:
#   `FitError.Error` in `pkg/scheduler/framework/types.go`, preemption:
#   `pkg/scheduler/framework/preemption/preemption.go`: https://github.com/kubernetes/kubernetes
# - Taints and tolerations: https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/
# - Pod priority and preemption: https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/
# - Device plugins (health, allocatable): https://kubernetes.io/docs/concepts/extend-kubernetes/compute-storage-net/device-plugins/
# - NVIDIA GPU Operator, MIG strategies: https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/gpu-operator-mig.html
# - DCGM exporter fields (DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_XID_ERRORS): https://github.com/NVIDIA/dcgm-exporter
