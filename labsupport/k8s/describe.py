"""`kubectl describe` and `kubectl get` style text for the lab's pods and deployments.

    >>> import sys
    >>> from labsupport.k8s import Pod, PodSpec
    >>> pod = Pod("idle", PodSpec(command=[sys.executable, "-c", "pass"]))
    >>> print(describe_pod(pod).splitlines()[0])
    Name:             idle

Ages are real seconds; probe and grace settings are shown in manifest seconds, with the time
scale named in the header so the two can be told apart.
"""

from __future__ import annotations

import shlex
import time
from datetime import datetime
from typing import TYPE_CHECKING

from labsupport.k8s.events import NAMESPACE, NODE, format_age, format_events

if TYPE_CHECKING:
    from labsupport.k8s.deployment import Deployment
    from labsupport.k8s.pod import Pod


def _ts(t: float | None) -> str:
    return "<none>" if not t else datetime.fromtimestamp(t).strftime("%a, %d %b %Y %H:%M:%S")


def describe_pod(pod: Pod) -> str:
    spec = pod.spec
    lines = [
        f"Name:             {pod.name}",
        f"Namespace:        {NAMESPACE}",
        f"Node:             {NODE}/127.0.0.1" if pod.scheduled else "Node:             <none>",
        f"Start Time:       {_ts(pod.created_at)}",
        f"Status:           {pod.status}",
        "IP:               127.0.0.1",
        f"Time scale:       {pod.timing.time_scale:g} real s per manifest s",
        "Containers:",
        f"  {spec.name}:",
        f"    Command:        {shlex.join(spec.command)}",
    ]
    for p in spec.ports:
        name = f" ({p.name})" if p.name else ""
        lines.append(
            f"    Port:           {p.container_port}/TCP{name} -> "
            f"127.0.0.1:{pod.host_ports[p.container_port]}"
        )
    if pod.state == "Running":
        started = _ts(pod.container.started_at)
        lines += ["    State:          Running", f"      Started:      {started}"]
    elif pod.state == "Waiting":
        lines += ["    State:          Waiting", f"      Reason:       {pod.waiting_reason}"]
    else:
        lines += ["    State:          Terminated"]
    if pod.last_state is not None:
        t = pod.last_state
        lines += [
            "    Last State:     Terminated",
            f"      Reason:       {t.reason}",
            f"      Exit Code:    {t.exit_code}",
            f"      Started:      {_ts(t.started_at)}",
            f"      Finished:     {_ts(t.finished_at)}",
        ]
        if t.message:
            lines.append(f"      Message:      {t.message}")
    lines += [f"    Ready:          {pod.ready}", f"    Restart Count:  {pod.restart_count}"]
    if spec.gpus:
        lines.append(f"    Limits:         nvidia.com/gpu: {spec.gpus}")
    for kind in ("liveness", "readiness", "startup"):
        probe = getattr(spec, f"{kind}_probe")
        if probe is not None:
            lines.append(f"    {kind.capitalize() + ':':<16}{probe.describe()}")
    if spec.pre_stop is not None:
        lines.append(f"    PreStop:        {spec.pre_stop.describe()}")
    if spec.env:
        lines.append("    Environment:")
        lines += [f"      {k}:  {v}" for k, v in spec.env]
    ready = str(pod.ready)
    lines += [
        "Conditions:",
        "  Type              Status",
        f"  PodScheduled      {pod.scheduled}",
        f"  Initialized       {pod.scheduled}",
        f"  ContainersReady   {ready}",
        f"  Ready             {ready}",
        f"Termination Grace Period:  {spec.termination_grace_period_seconds:g}s",
        format_events(pod.events),
    ]
    return "\n".join(lines)


def pod_status(pod: Pod) -> dict:
    """The pod's status as `kubectl get pod -o json` has it (the fields the labs use)."""

    def iso(t: float | None) -> str | None:
        return datetime.fromtimestamp(t).isoformat(timespec="seconds") if t else None

    if pod.state == "Running" and pod.container is not None:
        state = {"running": {"startedAt": iso(pod.container.started_at)}}
    elif pod.state == "Waiting":
        state = {"waiting": {"reason": pod.waiting_reason}}
    else:
        state = {"terminated": {}}
    last = pod.last_state
    last_state = (
        {}
        if last is None
        else {
            "terminated": {
                "exitCode": last.exit_code,
                "reason": last.reason,
                "startedAt": iso(last.started_at),
                "finishedAt": iso(last.finished_at),
                **({"message": last.message} if last.message else {}),
            }
        }
    )
    return {
        "phase": pod.phase,
        "conditions": [{"type": "Ready", "status": str(pod.ready)}],
        "containerStatuses": [
            {
                "name": pod.spec.name,
                "ready": pod.ready,
                "started": pod.started,
                "restartCount": pod.restart_count,
                "state": state,
                "lastState": last_state,
            }
        ],
    }


def get_pods(pods: list[Pod]) -> str:
    """The table of `kubectl get pods`."""
    rows = [("NAME", "READY", "STATUS", "RESTARTS", "AGE")]
    now = time.time()
    for p in pods:
        rows.append(
            (
                p.name,
                f"{int(p.ready)}/1",
                p.status,
                str(p.restart_count),
                format_age(now - p.created_at),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("   ".join(r[i].ljust(widths[i]) for i in range(5)).rstrip() for r in rows)


def describe_deployment(dep: Deployment) -> str:
    from labsupport.k8s.rollout import Recreate, max_surge, max_unavailable

    c = dep.counts()
    strategy = dep.strategy
    if isinstance(strategy, Recreate):
        strat = ["StrategyType:           Recreate"]
    else:
        # the counts the controller uses: MaxSurge, and MaxUnavailable clamped to replicas
        # (pkg/controller/deployment/util/deployment_util.go)
        surge, unavailable = (
            max_surge(strategy, dep.replicas),
            max_unavailable(strategy, dep.replicas),
        )
        strat = [
            "StrategyType:           RollingUpdate",
            f"RollingUpdateStrategy:  {strategy.max_unavailable} max unavailable, "
            f"{strategy.max_surge} max surge (= {unavailable} and {surge} pods)",
        ]
    lines = [
        f"Name:                   {dep.name}",
        f"Namespace:              {NAMESPACE}",
        f"Replicas:               {dep.replicas} desired | {c['updated']} updated | "
        f"{c['replicas']} total | {c['available']} available | "
        f"{c['replicas'] - c['available']} unavailable",
        *strat,
        f"MinReadySeconds:        {dep.min_ready_seconds:g}",
        f"Time scale:             {dep.timing.time_scale:g} real s per manifest s",
        f"Service:                {dep.balancer.url if dep.balancer else '<none>'} -> "
        f"{', '.join(n for n, _, _ in dep.endpoints) or '<none>'}",
        f"NewReplicaSet:          {dep.name}-{dep.revision}",
        "Pods:",
        *["  " + line for line in get_pods(dep.pods).splitlines()],
        format_events(dep.events + dep.event_log.for_object("Service", dep.name)),
    ]
    return "\n".join(lines)
