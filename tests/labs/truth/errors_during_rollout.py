"""Lab 299's reference answers and interviewer material (never part of the package).

    >>> from tests.labs.truth import errors_during_rollout as truth
    >>> truth.answer_key(0)["causes"]
    ['cut_at_sigterm', 'sent_after_sigterm']
    >>> truth.answer_key(1)["causes"]
    ['killed_at_deadline', 'sent_after_sigterm']

- `failure_causes(requests, pods)`: why each failed request of a rollout failed, from the pods'
  lifecycles (the graded diagnosis).
- `sizing_problems(manifest, production=..., propagation_s=..., longest_answer_s=...,
  node_gpus=...)`: what keeps a rollout of a manifest from losing nothing on that cluster,
  bounded from both sides (the graded manifest).
- `reference_manifest(...)`: a manifest that passes; `answer_key(seed)`, `expected(seed)`,
  `RUBRIC`.
"""

from __future__ import annotations

import math

from labsupport.k8s import manifests
from labsupport.scenarios.errors_during_rollout import settings as rs
from labsupport.scenarios.errors_during_rollout import variant

CAUSES = ("sent_after_sigterm", "killed_at_deadline", "cut_at_sigterm", "other")
PRE_STOP_MARGIN_S = 2.0  # beyond the propagation: a busy node, a slow kube-proxy sync
PRE_STOP_MAX_EXTRA_S = 10.0  # beyond the propagation: longer only slows every rollout step
DRAIN_MAX_FACTOR = 2.0  # a budget over twice the longest answer holds a GPU for nothing
GRACE_MAX_EXTRA_S = 30.0  # beyond preStop + drain: the deadline is meant to be reachable


# ---- the diagnosis --------------------------------------------------------------------------
def failure_causes(requests, pods) -> dict:
    """{request index: cause} for every request whose status is not "ok"."""
    causes = {}
    for r in requests:
        if r.status == "ok":
            continue
        pod = pods.get(r.backend) if r.backend is not None else None
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


def production_causes(seed: int) -> list[str]:
    """The causes a rollout of the variant's production manifest shows (no SIGKILL when the
    server aborts at once; nothing cut at SIGTERM when it finishes its streams)."""
    v = variant(seed)
    if v.server_budget_s == 0:
        return ["cut_at_sigterm", "sent_after_sigterm"]
    return ["killed_at_deadline", "sent_after_sigterm"]


# ---- the manifest ---------------------------------------------------------------------------
def bounds(propagation_s: float, longest_answer_s: float, node_gpus: int, replicas: int) -> dict:
    """What each setting must be on that cluster (manifest seconds; inclusive ranges)."""
    spare = node_gpus - replicas
    return {
        "pre_stop_s": (propagation_s + PRE_STOP_MARGIN_S, propagation_s + PRE_STOP_MAX_EXTRA_S),
        "drain_s": (float(longest_answer_s), DRAIN_MAX_FACTOR * longest_answer_s),
        "grace_over_pre_stop_and_drain_s": (0.0, GRACE_MAX_EXTRA_S),
        "max_surge": (1, spare) if spare >= 1 else (0, 0),
        "max_unavailable": (0, 0) if spare >= 1 else (1, 1),
    }


def sizing_problems(
    manifest, *, production, propagation_s: float, longest_answer_s: float, node_gpus: int
) -> list[str]:
    """What keeps a rollout of `manifest` from losing nothing on that cluster ([] if none)."""
    try:
        obj = manifests.validate(manifest, require_command=False)
    except manifests.ManifestError as exc:
        return [f"not a valid manifest: {e}" for e in exc.errors]
    if obj["kind"] != "Deployment":
        return [f"kind: expected a Deployment, got {obj['kind']}"]
    prod = manifests.validate(production, require_command=False)
    s, p = rs.settings(obj), rs.settings(prod)
    out: list[str] = []
    where = "spec.template.spec"
    c = obj["spec"]["template"]["spec"]["containers"][0]
    pc = prod["spec"]["template"]["spec"]["containers"][0]
    if s["replicas"] != p["replicas"]:
        out.append(f"spec.replicas: production runs {p['replicas']}, keep it")
    for field in ("image", "command", "readinessProbe", "resources", "ports"):
        if c.get(field) != pc.get(field):
            out.append(f"{where}.containers[0].{field}: keep production's")
    b = bounds(propagation_s, longest_answer_s, node_gpus, p["replicas"])
    if s["pre_stop"] not in (None, "sleep"):
        out.append(
            f"{where}.containers[0].lifecycle.preStop: use the native sleep action; an exec "
            "or httpGet hook runs in real time, outside the lab's clock (and distroless "
            "images have no sleep binary)"
        )
    elif s["pre_stop_s"] < b["pre_stop_s"][0]:
        out.append(
            f"{where}.containers[0].lifecycle.preStop.sleep.seconds is {s['pre_stop_s']:g}: "
            f"load balancers keep sending new requests to a deleted pod for propagation_s = "
            f"{propagation_s:g} s, and a busy node adds to that: the pod must keep serving "
            "normally past then"
        )
    elif s["pre_stop_s"] > b["pre_stop_s"][1]:
        out.append(
            f"{where}.containers[0].lifecycle.preStop.sleep.seconds is {s['pre_stop_s']:g}: "
            f"far longer than the {propagation_s:g} s it must cover; every step of the "
            "rollout waits for it, and a sleep that outlasts the answers hides a server "
            "that cuts them"
        )
    flags = rs.shutdown_flags(obj)
    if len(flags) > 1:
        out.append(f"--shutdown-timeout appears {len(flags)} times in the args: set it once")
    elif s["drain_s"] < b["drain_s"][0]:
        out.append(
            f"--shutdown-timeout is {s['drain_s']:g} s: an answer in flight at SIGTERM may "
            f"need up to {longest_answer_s:g} s to finish"
        )
    elif s["drain_s"] > b["drain_s"][1]:
        out.append(
            f"--shutdown-timeout is {s['drain_s']:g} s, more than twice the longest answer "
            f"({longest_answer_s:g} s): a stuck request would hold the pod and its GPU that "
            "long"
        )
    floor = s["pre_stop_s"] + s["drain_s"]
    if s["grace_s"] < floor:
        out.append(
            f"{where}.terminationGracePeriodSeconds is {s['grace_s']:g} s, less than the "
            f"preStop sleep ({s['pre_stop_s']:g} s) + --shutdown-timeout ({s['drain_s']:g} "
            "s): when does the grace period start counting?"
        )
    elif s["grace_s"] > floor + GRACE_MAX_EXTRA_S:
        out.append(
            f"{where}.terminationGracePeriodSeconds is {s['grace_s']:g} s, {s['grace_s'] - floor:g}"
            f" s beyond preStop + --shutdown-timeout: a pod that hangs keeps its GPU that long"
            " and stalls the rollout; size it from the two, with a little slack"
        )
    out += _strategy_problems(obj, s, b, node_gpus)
    return out


def _strategy_problems(obj: dict, s: dict, b: dict, node_gpus: int) -> list[str]:
    if s["strategy"] != "RollingUpdate":
        return ["spec.strategy.type: Recreate stops every pod before starting new ones"]
    rolling = s["rolling_update"]
    missing = [k for k in ("maxSurge", "maxUnavailable") if k not in rolling]
    if missing:
        return [
            f"spec.strategy.rollingUpdate.{missing[0]}: set it explicitly (the 25% default "
            "rounds differently with the replica count)"
        ]
    spare = node_gpus - s["replicas"]
    if spare >= 1:
        out = []
        if s["max_unavailable"] != 0:
            out.append(
                f"spec.strategy.rollingUpdate.maxUnavailable resolves to {s['max_unavailable']}"
                f" pod(s): the node has {spare} free GPU(s), so a new pod can start before an "
                "old one goes, and capacity need not drop"
            )
        if not 1 <= s["max_surge"] <= spare:
            out.append(
                f"spec.strategy.rollingUpdate.maxSurge resolves to {s['max_surge']} pod(s): "
                f"the node has {spare} free GPU(s) for pods above the replicas"
            )
        return out
    if s["max_surge"] != 0:
        return [
            f"spec.strategy.rollingUpdate.maxSurge resolves to {s['max_surge']} pod(s), but "
            f"the node's {node_gpus} GPUs are all taken by the {s['replicas']} replicas: a "
            "surge pod stays Pending and the rollout stalls"
        ]
    if s["max_unavailable"] != 1:
        return [
            f"spec.strategy.rollingUpdate.maxUnavailable resolves to {s['max_unavailable']} "
            "pod(s): with no GPU to spare the rollout must take pods down, one at a time"
        ]
    return []


def reference_manifest(
    production, propagation_s: float, longest_answer_s: float, node_gpus: int
) -> str:
    """A manifest that passes `sizing_problems`: the model answer of the fix."""
    replicas = rs.settings(production)["replicas"]
    pre_stop = math.ceil(propagation_s + PRE_STOP_MARGIN_S)
    drain = math.ceil(longest_answer_s)
    spare = node_gpus - replicas
    return rs.manifest_with(
        production,
        pre_stop_s=pre_stop,
        drain_s=drain,
        grace_s=pre_stop + drain + 5,
        max_surge=1 if spare >= 1 else 0,
        max_unavailable=0 if spare >= 1 else 1,
    )


# ---- interviews -----------------------------------------------------------------------------
def answer_key(seed: int) -> dict:
    """The variant's graded ground truth: the causes its production rollout shows and the
    settings a lossless manifest needs on its cluster."""
    v = variant(seed)
    b = bounds(v.propagation_s, v.longest_answer_s, v.node_gpus, v.replicas)
    return {
        "causes": production_causes(seed),
        "pre_stop_sleep_s": [math.ceil(b["pre_stop_s"][0]), math.floor(b["pre_stop_s"][1])],
        "shutdown_timeout_s": [b["drain_s"][0], b["drain_s"][1]],
        "grace_s": f"preStop + --shutdown-timeout, at most {GRACE_MAX_EXTRA_S:g} s more",
        "max_surge": list(b["max_surge"]),
        "max_unavailable": list(b["max_unavailable"]),
    }


def expected(seed: int) -> dict:
    """What the interviewer should see in that variant (cheap: no rollout is run)."""
    v = variant(seed)
    causes = production_causes(seed)
    mode = (
        "the server aborts what is in flight at SIGTERM (vLLM's --shutdown-timeout 0)"
        if v.server_budget_s == 0
        else f"the server finishes its streams for up to {v.server_budget_s} s, but the grace "
        f"period is {v.grace_s} s: the kubelet SIGKILLs it mid-stream"
    )
    model = rs.settings(
        reference_manifest(v.production, v.propagation_s, v.longest_answer_s, v.node_gpus)
    )
    return {
        "cluster": f"{v.replicas} replicas of 1 GPU on a node with {v.node_gpus} GPUs; "
        f"propagation {v.propagation_s:g} s; longest answer {v.longest_answer_s} s "
        f"(max_tokens {v.max_tokens})",
        "production": f"no preStop; --shutdown-timeout {v.server_budget_s}; grace {v.grace_s} s",
        "production rollout": f"failures on old pods only, causes {causes}: {mode}; plus "
        f"requests still routed to each old pod for ~{v.propagation_s * rs.TIME_SCALE:.1f} s "
        f"real ({v.propagation_s:g} manifest s) after its deletion, refused (503) or reset",
        "evidence": "pod table: endpoint_removed - deleted ~ propagation; sigterm == deleted "
        "(no hook); sigkill - sigterm == grace when the grace is short; failed requests' "
        "start/end against those times",
        "answer_key": answer_key(seed),
        "model manifest": f"preStop sleep {model['pre_stop_s']:g} s, --shutdown-timeout "
        f"{model['drain_s']:g}, terminationGracePeriodSeconds {model['grace_s']:g}, maxSurge "
        f"{model['max_surge']}, maxUnavailable {model['max_unavailable']} "
        "(`reference_manifest` in tests/labs/truth/errors_during_rollout.py)",
    }


RUBRIC = {
    "diagnosis": {
        "strong": "Attributes every failed request from the pod lifecycle (start and end "
        "against the pod's SIGTERM and SIGKILL), names the two causes of this variant with "
        "numbers from the run (the balancer kept routing ~propagation_s after deletion; streams "
        "cut at SIGTERM or killed at the grace deadline) and explains why the dashboards showed "
        "full availability.",
        "adequate": "Gets the attribution right with some help from hints, but explains only "
        "one of the two causes, or without numbers from the run.",
        "weak": "Maps status to cause (truncated = cut, 503 = late) or blames the new pods, "
        "load or the model; does not read the event log.",
    },
    "fix": {
        "strong": "A handler that stops accepting at once and returns as soon as nothing is in "
        "flight, bounded by the budget; preStop sleep just past the measured propagation; "
        "--shutdown-timeout from the longest answer; grace = preStop + drain + a little; "
        "maxSurge/maxUnavailable chosen from the node's free GPUs. The rollout under load loses "
        "nothing.",
        "adequate": "The rollout loses nothing but one knob is off (a huge grace, a preStop far "
        "beyond the propagation, implicit 25% strategy) or the handler needed several tries.",
        "weak": "The classic answer only: raise terminationGracePeriodSeconds and 'handle "
        "SIGTERM', without a preStop; or a handler that sleeps a fixed time; or maxSurge 1 on a "
        "node with no free GPU.",
    },
    "reasoning": {
        "strong": "Explains that endpoint removal and SIGTERM start together and propagate "
        "separately, that the grace period counts from the preStop hook, that a terminating pod "
        "keeps its GPU (so drains slow every step and maxSurge needs a spare GPU), and what to "
        "do about answers longer than any budget (cap max_tokens, resumable clients).",
        "adequate": "Explains the preStop/propagation race and grace arithmetic, but not the "
        "GPU-capacity side of the rollout strategy.",
        "weak": "Treats the grace period as the drain time or believes SIGTERM arrives only after "
        "the pod has left the load balancers.",
    },
}
