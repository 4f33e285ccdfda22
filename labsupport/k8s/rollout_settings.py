"""Lab 299's manifest side: the incident's Deployment, its termination settings, their sizing.

    >>> from labsupport.k8s import rollout_settings as rs
    >>> fixed = rs.manifest_with(pre_stop_s=10, grace_s=60, drain_s=40, max_unavailable=0)
    >>> rs.sizing_problems(fixed)
    []
    >>> {k: rs.settings(fixed)[k] for k in ("pre_stop_s", "drain_s", "grace_s")}
    {'pre_stop_s': 10.0, 'drain_s': 40.0, 'grace_s': 60.0}

Durations are manifest seconds; the lab's supervisor plays them `TIME_SCALE` times as fast.
The drain budget is vLLM's `--shutdown-timeout` in the container args (0, vLLM's default:
abort in-flight requests on SIGTERM). `sizing_problems` says what keeps a rollout of a
manifest from being lossless in this lab's cluster, where endpoint changes take
`PROPAGATION_S` to reach the balancer and a stream lasts up to `MAX_STREAM_S`.
"""

from __future__ import annotations

import copy
import sys

import yaml

from labsupport.k8s import manifests
from labsupport.k8s.rollout import max_surge, max_unavailable

TIME_SCALE = 0.1  # real seconds per manifest second
PROPAGATION_S = 3.0  # endpoint change -> balancer, manifest seconds
MIN_PRE_STOP_S = PROPAGATION_S + 2.0  # the propagation plus a margin for a busy node
MAX_STREAM_S = 30.0  # the longest a stream may take here (96 tokens, with margin for a busy CPU)
STEP_MS = 20.0  # each decode step takes at least this long (stand-in for GPU time)

DEFAULT_MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm
  labels: {app: llm}
spec:
  replicas: 2
  selector:
    matchLabels: {app: llm}
  template:
    metadata:
      labels: {app: llm}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.18.0
        command: [python, -m, labsupport.serving.serve_cli]
        args: [--port, $(PORT), --max-num-seqs, "32"]
        ports:
        - {name: http, containerPort: 8000}
        readinessProbe:
          httpGet: {path: /ready, port: http}
          periodSeconds: 1
          failureThreshold: 1
        resources:
          limits: {nvidia.com/gpu: 1}
"""


# ---- manifests -----------------------------------------------------------------------------
def manifest_with(
    source=DEFAULT_MANIFEST,
    *,
    pre_stop_s: float | None = None,
    grace_s: float | None = None,
    drain_s: float | None = None,
    max_surge=None,
    max_unavailable=None,
) -> str:
    """The manifest with these settings changed (None: left as it is), as YAML text."""
    obj = copy.deepcopy(manifests.load(source))
    pod = obj["spec"]["template"]["spec"]
    c = pod["containers"][0]
    if pre_stop_s is not None:
        c["lifecycle"] = {"preStop": {"sleep": {"seconds": int(pre_stop_s)}}}
    if grace_s is not None:
        pod["terminationGracePeriodSeconds"] = int(grace_s)
    if drain_s is not None:
        args = [a for a in c.get("args") or []]
        if "--shutdown-timeout" in args:
            i = args.index("--shutdown-timeout")
            del args[i : i + 2]
        c["args"] = [*args, "--shutdown-timeout", str(int(drain_s))]
    if max_surge is not None or max_unavailable is not None:
        rolling = obj["spec"].setdefault("strategy", {"type": "RollingUpdate"})
        rolling = rolling.setdefault("rollingUpdate", {})
        if max_surge is not None:
            rolling["maxSurge"] = max_surge
        if max_unavailable is not None:
            rolling["maxUnavailable"] = max_unavailable
    return yaml.safe_dump(obj, sort_keys=False)


def drain_seconds(obj: dict) -> float:
    """vLLM's `--shutdown-timeout` from the container args (0, its default, when absent)."""
    c = obj["spec"]["template"]["spec"]["containers"][0]
    args = [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
    for i, a in enumerate(args):
        if a.startswith("--shutdown-timeout="):
            return float(a.split("=", 1)[1])
        if a == "--shutdown-timeout" and i + 1 < len(args):
            return float(args[i + 1])
    return 0.0


def settings(source) -> dict:
    """The termination settings of a valid Deployment manifest (manifest seconds)."""
    obj = manifests.validate(source, require_command=False)
    pod = obj["spec"]["template"]["spec"]
    hook = ((pod["containers"][0].get("lifecycle") or {}).get("preStop")) or {}
    kw = manifests.deployment_kwargs(obj)
    # MaxSurge and MaxUnavailable as the controller uses them (deployment_util.go): the
    # unavailable count is clamped to the replicas (5 replicas, maxUnavailable 10 -> 5)
    surge = max_surge(kw["strategy"], kw["replicas"])
    unavailable = max_unavailable(kw["strategy"], kw["replicas"])
    return {
        "replicas": kw["replicas"],
        "pre_stop_s": float((hook.get("sleep") or {}).get("seconds", 0)),
        "pre_stop": next(iter(hook), None),
        "grace_s": float(pod.get("terminationGracePeriodSeconds", 30)),
        "drain_s": drain_seconds(obj),
        "max_surge": surge,
        "max_unavailable": unavailable,
        "propagation_s": PROPAGATION_S,
        "time_scale": TIME_SCALE,
    }


def sizing_problems(source) -> list[str]:
    """What keeps a rollout of this manifest from being lossless here ([] when none)."""
    try:
        obj = manifests.validate(source, require_command=False)
    except manifests.ManifestError as exc:
        return exc.errors
    if obj["kind"] != "Deployment":
        return [f"kind: expected a Deployment, got {obj['kind']}"]
    s, out = settings(obj), []
    rolling = (obj["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    if str(rolling.get("maxUnavailable")) not in ("0", "0%"):
        out.append(
            "spec.strategy.rollingUpdate.maxUnavailable: set it to 0 explicitly (the default "
            "25% rounds down to 0 only below 4 replicas)"
        )
    if s["replicas"] < 2:
        out.append(f"spec.replicas: {s['replicas']}: one replica cannot roll without a gap")
    c = obj["spec"]["template"]["spec"]["containers"][0]
    if not c.get("readinessProbe"):
        out.append("readinessProbe: without one a new pod gets traffic before it listens")
    where = "spec.template.spec"
    if s["pre_stop"] not in (None, "sleep"):
        out.append(
            f"{where}.containers[0].lifecycle.preStop: use the native sleep action here; an "
            f"exec or httpGet hook runs in real time, outside the lab's clock"
        )
    elif s["pre_stop_s"] < MIN_PRE_STOP_S:
        out.append(
            f"{where}.containers[0].lifecycle.preStop.sleep.seconds is {s['pre_stop_s']:g}: "
            f"endpoint changes take up to {PROPAGATION_S:g} s to reach the load balancer "
            f"here; sleep at least {MIN_PRE_STOP_S:g} s (that plus a margin)"
        )
    if s["drain_s"] < MAX_STREAM_S:
        out.append(
            f"--shutdown-timeout is {s['drain_s']:g} s: in-flight streams need up to "
            f"{MAX_STREAM_S:g} s to finish"
        )
    if s["grace_s"] < s["pre_stop_s"] + s["drain_s"]:
        out.append(
            f"{where}.terminationGracePeriodSeconds is {s['grace_s']:g} s, less than preStop "
            f"({s['pre_stop_s']:g} s) + drain ({s['drain_s']:g} s): the grace period starts "
            "with the preStop hook"
        )
    return out


def server_command(drain_s: float, handler=None, step_ms: float = STEP_MS) -> list[str]:
    """The container's argv: `srelab serve` with the drain budget scaled into real seconds."""
    argv = [sys.executable, "-m", "labsupport.serving.serve_cli", "--port", "$(PORT)"]
    argv += ["--min-step-ms", f"{step_ms:g}", "--shutdown-timeout", f"{drain_s * TIME_SCALE:g}"]
    argv += ["--torch-threads", "1", "--log-level", "warning"]
    if handler is not None:
        from labsupport.portable import sendable
        from labsupport.serving.shutdown import encode_handler

        sent = sendable(handler)
        argv += ["--sigterm-handler", sent if isinstance(sent, str) else encode_handler(sent)]
    return argv
