"""Reference answers for lab 282 (pod pending while a GPU looks idle): the cause and its
culprit per variant, what a fix may change, the interviewer's rubric."""

from __future__ import annotations

import yaml

from labsupport.scenarios import pod_pending_gpu_idle as scenario
from labsupport.scenarios.pod_pending_gpu_idle import cluster, evidence

GPU = "nvidia.com/gpu"
_EVIDENCE: dict[int, dict] = {}


def culprit(v: scenario.Variant) -> str:
    """The object that proves the cause, as the evidence prints it."""
    return {
        "idle_pod": v.idle_pod,
        "untolerated_taint": v.taint,
        "unhealthy_device": v.victim_node,
        "mig_resource_name": v.mig_profile,
        "selector_typo": f"{scenario.PRODUCT_KEY}={scenario.PRODUCT}",
    }[v.cause]


def diagnosis(seed: int) -> dict:
    v = scenario.variant(seed)
    return {"cause": v.cause, "culprit": culprit(v)}


def graded_seeds(seed: int) -> list[int]:
    """The seed's variant first, then one of every other cause (five in all)."""
    return [seed + k for k in range(len(scenario.CAUSES))]


def evidence_for(seed: int) -> dict:
    """The incident's evidence for a seed, built once per session."""
    if seed not in _EVIDENCE:
        _EVIDENCE[seed] = evidence.collect(cluster.incident(scenario.variant(seed)), seed)
    return _EVIDENCE[seed]


def reference_fix(seed: int) -> str:
    """A fix that passes: the cause's own lever in the pod template, nothing else."""
    v = scenario.variant(seed)
    obj = yaml.safe_load(cluster.manifest(v))
    spec = obj["spec"]["template"]["spec"]
    if v.cause == "idle_pod":
        spec["priorityClassName"] = "llm-serving"
    elif v.cause == "untolerated_taint":
        spec["tolerations"][0]["value"] = v.taint_value
    elif v.cause == "selector_typo":
        spec["nodeSelector"][scenario.PRODUCT_KEY] = scenario.PRODUCT
    elif v.cause == "mig_resource_name":
        limits = spec["containers"][0]["resources"]["limits"]
        limits[v.mig_profile] = limits.pop(GPU)
    else:
        spec["nodeSelector"]["pool"] = "burst"
        spec["tolerations"].append({"key": "pool", "value": "burst", "effect": "NoSchedule"})
    return yaml.safe_dump(obj, sort_keys=False)


def answer_key(seed: int) -> dict:
    """The variant's graded ground truth."""
    v = scenario.variant(seed)
    return {
        "cause": v.cause,
        "culprit": culprit(v),
        "gpus": v.gpus,
        "serving_nodes": list(v.serving_nodes),
        "victim_node": v.victim_node,
        "graded_causes": [scenario.variant(s).cause for s in graded_seeds(seed)],
        "fix": "schedules on a serving node (the burst pool only for an unhealthy device), "
        "evicts only an idle pod, same image, replicas and device count, valid schema",
    }


_LEVERS = {
    "idle_pod": "priorityClassName: llm-serving (preempts only the idle priority-0 pod)",
    "untolerated_taint": "a toleration with the taint's exact key, value and effect",
    "unhealthy_device": "nodeSelector pool=burst and a toleration for pool=burst:NoSchedule",
    "mig_resource_name": "limits on the MIG profile the nodes advertise instead of nvidia.com/gpu",
    "selector_typo": "the nodeSelector value copied from the nodes' label",
}


def expected(seed: int) -> dict:
    """What the interviewer should see in variant `seed`."""
    v = scenario.variant(seed)
    incident = cluster.incident(v)
    return {
        "the page": f"llm-server's new replica Pending; {incident.message}",
        "cause": v.cause,
        "evidence to name": culprit(v),
        "where it shows": {
            "idle_pod": f"describe node {v.victim_node}: {v.idle_pod} holds {v.gpus} GPUs; "
            "DCGM shows them at 0% util and a few hundred MiB; priority 0, so the replica "
            "(priority 0) cannot preempt it",
            "untolerated_taint": f"describe node: Taints {v.taint}; the pod tolerates "
            f"value {v.toleration_value!r}",
            "unhealthy_device": f"describe node {v.victim_node}: Capacity nvidia.com/gpu 8, "
            "Allocatable 7; DCGM: XID 79 on one GPU without a pod",
            "mig_resource_name": f"describe node: nvidia.com/gpu 0, {v.mig_profile} "
            "advertised (mig.strategy=mixed)",
            "selector_typo": f"the pod's Node-Selectors {scenario.PRODUCT_KEY}="
            f"{v.selector_value}; the nodes carry {scenario.PRODUCT}",
        }[v.cause],
        "a passing fix": _LEVERS[v.cause],
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Reads the FailedScheduling histogram as counts of nodes per first failing filter, "
            "then checks the nodes themselves (describe node: capacity vs allocatable, taints, "
            "labels, who holds the devices, DCGM utilization) and names the object that proves "
            "the cause; tells an idle pod from an unhealthy device although both print "
            "'Insufficient nvidia.com/gpu'."
        ),
        "adequate": (
            "Finds the right filter from the message and the right cause, but names no "
            "evidence, or reads only the pod and guesses the node side."
        ),
        "weak": (
            "Concludes 'not enough GPUs, buy more' or 'the scheduler is broken' from idle GPU "
            "dashboards, or changes the manifest at random until it schedules."
        ),
    },
    "fix": {
        "strong": (
            "Changes the one field the cause needs (priority class, toleration, MIG resource "
            "name, selector value, or the burst pool while the node is repaired), validates it, "
            "and checks that only the idle pod was preempted and the device count is unchanged."
        ),
        "adequate": (
            "A manifest that schedules, with a broader change than needed (tolerating every "
            "taint, dropping the selector) that would land elsewhere in another state."
        ),
        "weak": (
            "nodeName to bypass the scheduler, fewer GPUs than the model needs, or deleting "
            "other teams' pods by hand."
        ),
    },
    "reasoning": {
        "strong": (
            "Explains filter order and first-failure statuses, why preemption was 'not "
            "helpful' (unresolvable reasons) or found no victims (equal priority), and that "
            "the device plugin's allocatable, not nvidia-smi, is what the scheduler counts."
        ),
        "adequate": "Explains the chosen cause but not why the others were ruled out.",
        "weak": "Cannot say what the numbers in the message count.",
    },
}
