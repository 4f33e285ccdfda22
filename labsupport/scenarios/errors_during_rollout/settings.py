"""Lab 299's manifests: the production Deployment of each variant, edits to it, what it sets.

    >>> from labsupport.scenarios.errors_during_rollout import settings as rs
    >>> changed = rs.manifest_with(rs.production_manifest(), pre_stop_s=6, grace_s=50,
    ...                            drain_s=40, max_surge=1, max_unavailable=0)
    >>> {k: rs.settings(changed)[k] for k in ("pre_stop_s", "drain_s", "grace_s", "max_surge")}
    {'pre_stop_s': 6.0, 'drain_s': 40.0, 'grace_s': 50.0, 'max_surge': 1}
    >>> rs.settings(rs.production_manifest())["grace_s"]  # the Kubernetes default
    30.0

Durations are manifest seconds; the lab's supervisor plays them `TIME_SCALE` times as fast.
vLLM's `--shutdown-timeout` in the container args is read as the server's budget on SIGTERM
(0, vLLM's default, when absent). The lab runs its own server command in the container
(`server_command`) and takes from the manifest's args only that flag.
"""

from __future__ import annotations

import copy
import sys

import yaml

from labsupport.k8s import manifests
from labsupport.k8s.rollout import max_surge, max_unavailable

TIME_SCALE = 0.1  # real seconds per manifest second
STEP_MS = 20.0  # each decode step takes at least this long (stand-in for GPU time)

_MANIFEST = """\
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
          periodSeconds: 2
          failureThreshold: 3
        resources:
          limits: {nvidia.com/gpu: 1}
"""


# ---- manifests -----------------------------------------------------------------------------
def production_manifest(
    replicas: int = 2,
    *,
    spare_gpus: int = 1,
    server_budget_s: float | None = None,
    grace_s: float | None = None,
) -> str:
    """The Deployment running in production: `replicas` pods of one GPU each.

    spare_gpus: GPUs the node has beyond the replicas; with none, a surge pod could never be
    scheduled, so production rolls one pod down first (maxSurge 0, maxUnavailable 1).
    server_budget_s, grace_s: vLLM's `--shutdown-timeout` and terminationGracePeriodSeconds
    when production sets them (None: the defaults, 0 and 30 s).
    """
    obj = manifests.load(_MANIFEST)
    obj["spec"]["replicas"] = int(replicas)
    text = yaml.safe_dump(obj, sort_keys=False)
    if spare_gpus <= 0:
        text = manifest_with(text, max_surge=0, max_unavailable=1)
    return manifest_with(text, drain_s=server_budget_s, grace_s=grace_s)


def manifest_with(
    source,
    *,
    pre_stop_s: float | None = None,
    grace_s: float | None = None,
    drain_s: float | None = None,
    max_surge=None,
    max_unavailable=None,
) -> str:
    """The manifest with these settings changed (None: left as it is), as YAML text.

    pre_stop_s: a native preStop sleep of that many seconds; drain_s: vLLM's
    `--shutdown-timeout` in the container args (replacing any there); the rest as named.
    """
    obj = copy.deepcopy(manifests.load(source))
    pod = obj["spec"]["template"]["spec"]
    c = pod["containers"][0]
    if pre_stop_s is not None:
        c["lifecycle"] = {"preStop": {"sleep": {"seconds": int(pre_stop_s)}}}
    if grace_s is not None:
        pod["terminationGracePeriodSeconds"] = int(grace_s)
    if drain_s is not None:
        args, kept = [str(a) for a in c.get("args") or []], []
        i = 0
        while i < len(args):
            if args[i] == "--shutdown-timeout":
                i += 2
                continue
            if not args[i].startswith("--shutdown-timeout="):
                kept.append(args[i])
            i += 1
        c["args"] = [*kept, "--shutdown-timeout", str(int(drain_s))]
    if max_surge is not None or max_unavailable is not None:
        rolling = obj["spec"].setdefault("strategy", {"type": "RollingUpdate"})
        rolling = rolling.setdefault("rollingUpdate", {})
        if max_surge is not None:
            rolling["maxSurge"] = max_surge
        if max_unavailable is not None:
            rolling["maxUnavailable"] = max_unavailable
    return yaml.safe_dump(obj, sort_keys=False)


def shutdown_flags(obj: dict) -> list[float]:
    """Every `--shutdown-timeout` value in the container's command and args, in order."""
    c = obj["spec"]["template"]["spec"]["containers"][0]
    args = [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
    out = []
    for i, a in enumerate(args):
        if a.startswith("--shutdown-timeout="):
            out.append(float(a.split("=", 1)[1]))
        elif a == "--shutdown-timeout" and i + 1 < len(args):
            out.append(float(args[i + 1]))
    return out


def drain_seconds(obj: dict) -> float:
    """vLLM's `--shutdown-timeout` from the container args (0, its default, when absent).

    Like argparse, the last occurrence wins.
    """
    flags = shutdown_flags(obj)
    return flags[-1] if flags else 0.0


def settings(source) -> dict:
    """What a valid Deployment manifest sets for a rollout (manifest seconds)."""
    obj = manifests.validate(source, require_command=False)
    pod = obj["spec"]["template"]["spec"]
    c = pod["containers"][0]
    hook = ((c.get("lifecycle") or {}).get("preStop")) or {}
    kw = manifests.deployment_kwargs(obj)
    strategy = obj["spec"].get("strategy") or {}
    # MaxSurge and MaxUnavailable as the controller uses them (deployment_util.go): the
    # unavailable count is clamped to the replicas (5 replicas, maxUnavailable 10 -> 5)
    return {
        "replicas": kw["replicas"],
        "pre_stop": next(iter(hook), None),
        "pre_stop_s": float((hook.get("sleep") or {}).get("seconds", 0)),
        "grace_s": float(pod.get("terminationGracePeriodSeconds", 30)),
        "drain_s": drain_seconds(obj),
        "strategy": strategy.get("type", "RollingUpdate"),
        "rolling_update": dict(strategy.get("rollingUpdate") or {}),
        "max_surge": max_surge(kw["strategy"], kw["replicas"]),
        "max_unavailable": max_unavailable(kw["strategy"], kw["replicas"]),
        "gpus_per_pod": int(
            ((c.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 0)
        ),
        "readiness": c.get("readinessProbe"),
        "time_scale": TIME_SCALE,
    }


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
