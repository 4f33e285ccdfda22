"""Lab 299's workload: a rolling update of real model servers under steady streaming load.

    >>> from labsupport.scenarios.errors_during_rollout import load, variant
    >>> v = variant(0)
    >>> run = load.run_rollout(v.production, variant=v, arm="production")   # doctest: +SKIP
    >>> run.by_status                                                      # doctest: +SKIP
    {'connection_error': 3, 'http_error': 4, 'ok': 55, 'truncated': 5}
    >>> print(run.pod_table())                                             # doctest: +SKIP

A Deployment of `srelab serve` pods (the tiny engine behind the OpenAI API, real processes)
runs behind the lab's Service balancer on a node with the variant's GPUs; `StreamingLoad`
clients stream completions through it while the Deployment controller rolls the pods to a new
revision, and the lab's kubelet and kube-proxy play the Kubernetes termination sequence for
each old pod with the variant's cluster timings. Each request is recorded with the pod that
served it, each pod with the times of its lifecycle events, in seconds since the rollout
started (real seconds: x10 for manifest seconds).

The manifest is validated against the real Kubernetes schema (`settings`). The lab runs its own
server command in the container and takes from the manifest's container args only vLLM's
`--shutdown-timeout`. `handler` is the server's SIGTERM handler (None: the server's own, which
is vLLM's behaviour for that flag).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace

from labsupport import progress, wire
from labsupport.k8s import manifests
from labsupport.k8s.traffic import RequestRecord, StreamingLoad, attach_backends, by_status
from labsupport.scenarios.errors_during_rollout import Variant, variant
from labsupport.scenarios.errors_during_rollout.settings import (
    TIME_SCALE,
    server_command,
    settings,
)


@wire.record
@dataclass(frozen=True)
class LoadConfig:
    clients: int = 6
    min_tokens: int = 16
    max_tokens: int = 96
    seed: int = 0
    warmup_requests: int = 4  # requests finished before the rollout starts

    @classmethod
    def of(cls, v: Variant, seed: int | None = None) -> LoadConfig:
        """The variant's traffic (`seed` picks the answers' lengths; default: the variant's)."""
        return cls(v.clients, v.min_tokens, v.max_tokens, v.seed if seed is None else seed)


@wire.record
@dataclass
class PodLifecycle:
    """One pod's story in seconds since the rollout started (None: it did not happen)."""

    name: str
    revision: str  # "old" or "new"
    created_s: float | None = None
    endpoint_added_s: float | None = None  # the balancer started routing to it
    deleted_s: float | None = None  # marked Terminating (removed from the EndpointSlice)
    endpoint_removed_s: float | None = None  # the balancer stopped routing to it
    pre_stop_s: float | None = None
    sigterm_s: float | None = None
    sigkill_s: float | None = None
    exited_s: float | None = None
    exit_code: int | None = None


@wire.record
@dataclass
class RolloutRun:
    arm: str
    settings: dict
    requests: list[RequestRecord]  # times in seconds since the rollout started
    pods: dict[str, PodLifecycle]
    events: list[tuple]  # (t_s, kind, name, reason, message)
    succeeded: bool
    reason: str
    rollout_s: float  # until the new pods were available and the old ones deleted
    drained_s: float  # until every old process had exited
    min_available: int
    max_pods: int
    device: str = "cpu"
    seed: int = 0  # the variant

    @property
    def failed(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.failed]

    @property
    def by_status(self) -> dict[str, int]:
        return by_status(self.requests)

    @property
    def sigkills(self) -> int:
        return sum(p.sigkill_s is not None for p in self.pods.values())

    @property
    def success_pct(self) -> float:
        return 100.0 * (len(self.requests) - len(self.failed)) / max(1, len(self.requests))

    def summary(self) -> str:
        """Requests and outcomes, how long the rollout took (says nothing of the settings)."""
        return (
            f"{self.arm}: {len(self.requests)} requests, {len(self.failed)} failed or truncated "
            f"{self.by_status}; rollout {self.rollout_s:.1f} s, old pods gone after "
            f"{self.drained_s:.1f} s, SIGKILLs {self.sigkills}"
        )

    def settings_line(self) -> str:
        """The termination settings the run used (manifest seconds)."""
        s = self.settings
        hook = f"preStop sleep {s['pre_stop_s']:g} s" if s.get("pre_stop") else "no preStop"
        return (
            f"{self.arm}: {hook}, --shutdown-timeout {s['drain_s']:g} s, grace "
            f"{s['grace_s']:g} s, maxSurge {s['max_surge']}, maxUnavailable "
            f"{s['max_unavailable']}, SIGTERM handler: {s['handler']}"
        )

    def pod_table(self) -> str:
        cols = (
            "created",
            "endpoint_added",
            "deleted",
            "endpoint_removed",
            "pre_stop",
            "sigterm",
            "sigkill",
            "exited",
        )
        head = f"{'pod':<22}{'rev':<5}" + "".join(f"{c:>17}" for c in cols) + "  exit"
        rows = [head]
        for p in sorted(self.pods.values(), key=lambda p: (p.revision != "old", p.created_s)):
            vals = [getattr(p, f"{c}_s") for c in cols]
            cells = "".join(f"{'-' if v is None else f'{v:.2f}':>17}" for v in vals)
            rows.append(f"{p.name:<22}{p.revision:<5}{cells}  {p.exit_code}")
        return "\n".join(rows)

    def event_lines(self, since_s: float = -0.5) -> list[str]:
        """The event log from `since_s` on, as `kubectl get events` would list it."""
        return [
            f"{t:6.2f} s  {kind:<8} {name:<22} {reason:<16} {message}"
            for t, kind, name, reason, message in self.events
            if t >= since_s
        ]


class RolloutFailed(RuntimeError):
    """The pods did not come up (the message holds their logs)."""


# ---- the run -------------------------------------------------------------------------------
def _deployment(manifest, handler, v: Variant, **overrides):
    from labsupport.k8s.deployment import Deployment
    from labsupport.k8s.events import Timing

    conf = settings(manifest)
    template = manifests.pod_spec(manifest, command=server_command(conf["drain_s"], handler))
    kwargs = {k: val for k, val in manifests.deployment_kwargs(manifest).items() if k != "name"}
    kwargs.update(overrides)
    name = manifests.load(manifest)["metadata"]["name"]
    dep = Deployment(
        name,
        template,
        **kwargs,
        timing=Timing(time_scale=TIME_SCALE),
        node_gpus=v.node_gpus,
        endpoint_propagation_seconds=v.propagation_s,
    )
    return dep, template, conf


def run_rollout(
    manifest=None,
    handler=None,
    *,
    variant: Variant | int = 0,
    arm: str = "",
    load: LoadConfig | None = None,
    timeout_s: float = 90.0,
) -> RolloutRun:
    """Deploy, start the load, roll to a new revision, stop the load; return what happened.

    manifest: the Deployment (default: the variant's production one). handler: the SIGTERM
    handler (None: the server's own; "abort", "drain", a function, or an ExerciseRef).
    variant: a Variant or its seed: the node's GPUs, the cluster's timings, the traffic.
    """
    v = variant if isinstance(variant, Variant) else _variant(variant)
    manifest = v.production if manifest is None else manifest
    load = load or LoadConfig.of(v)
    dep, template, conf = _deployment(manifest, handler, v)
    replicas = conf["replicas"]
    deadline = time.monotonic() + timeout_s
    label = arm or ("production" if handler is None else "handler")
    with dep, progress.bar(2 + 2 * replicas, f"rollout ({label})", unit="step") as bar:
        if not dep.wait_ready(min(60.0, timeout_s)) or not dep.wait_for(
            lambda d: len(d.balancer.backends) == replicas, 10
        ):
            logs = "\n".join(f"--- {p.name}:\n{p.logs()[-1500:]}" for p in dep.pods)
            raise RolloutFailed(f"the pods did not become ready:\n{logs}")
        bar.update()
        seen = {p.name: p for p in dep.pods}
        old_names = set(seen)
        with StreamingLoad(
            dep.url,
            clients=load.clients,
            min_tokens=load.min_tokens,
            max_tokens=load.max_tokens,
            seed=load.seed,
            max_run_s=timeout_s,
        ) as traffic:
            traffic.wait_for_requests(load.warmup_requests, timeout_s=30)
            bar.update()
            t0 = time.time()
            future = dep.rollout_in_background(
                template.with_env(VERSION="2"), timeout_s=max(1.0, deadline - time.monotonic())
            )
            while not future.done():
                seen.update({p.name: p for p in list(dep.pods)})
                _advance(bar, seen, old_names)
                time.sleep(0.02)
            seen.update({p.name: p for p in list(dep.pods)})
            result = future.result()
            _advance(bar, seen, old_names)
            time.sleep(0.3)  # a little load on the new pods only
        attach_backends(traffic.records, dep.balancer)
        events = dep.event_log.all()
        pods = _lifecycles(seen, old_names, events, t0)  # before close() deletes the new pods
    requests = [
        replace(r, start_s=r.start_s - t0, end_s=r.end_s - t0)
        for r in traffic.records
        if r.end_s > 0
    ]
    return RolloutRun(
        arm=label,
        settings={**conf, "handler": _describe(handler)},
        requests=requests,
        pods=pods,
        events=[(e.first_time - t0, e.kind, e.name, e.reason, e.message) for e in events],
        succeeded=result.succeeded,
        reason=result.reason,
        rollout_s=result.duration_s,
        drained_s=result.drained_s,
        min_available=result.min_available,
        max_pods=result.max_pods,
        device=_device(),
        seed=v.seed,
    )


def _variant(seed: int) -> Variant:
    return variant(seed)


def _advance(bar, seen: dict, old_names: set) -> None:
    """One step per new pod ready and per old pod gone (2 already done: deploy, warm-up)."""
    done = 2 + sum((p.done.is_set() if n in old_names else p.ready) for n, p in list(seen.items()))
    if done > bar.n:
        bar.update(min(done, bar.total) - bar.n)


def _describe(handler) -> str:
    if handler is None:
        return "the server's own"
    if isinstance(handler, str):
        return handler
    return getattr(handler, "name", None) or getattr(handler, "__name__", type(handler).__name__)


def _device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


_SYNCED = re.compile(r"\(([^)]*)\)\s*$")


def _lifecycles(pods: dict, old_names: set, events: list, t0: float) -> dict[str, PodLifecycle]:
    out = {n: PodLifecycle(n, "old" if n in old_names else "new") for n in pods}
    for e in sorted(events, key=lambda e: e.first_time):
        t = e.first_time - t0
        if e.kind == "Service" and e.reason == "EndpointsSynced":
            m = _SYNCED.search(e.message)
            for change in m.group(1).split(", ") if m else []:
                lc = out.get(change[1:])
                if lc is None:
                    continue
                if change.startswith("+"):
                    lc.endpoint_added_s = lc.endpoint_added_s if lc.endpoint_added_s else t
                elif change.startswith("-") and lc.endpoint_removed_s is None:
                    lc.endpoint_removed_s = t
            continue
        lc = out.get(e.name) if e.kind == "Pod" else None
        if lc is None:
            continue
        if e.reason == "Scheduled" and lc.created_s is None:
            lc.created_s = t
        elif e.reason == "PreStopHook" and lc.pre_stop_s is None:
            lc.pre_stop_s = t
        elif e.reason == "Signal" and e.message.startswith("Sent SIGTERM"):
            lc.sigterm_s = lc.sigterm_s if lc.sigterm_s is not None else t
        elif e.reason == "Signal" and "SIGKILL" in e.message:
            lc.sigkill_s = lc.sigkill_s if lc.sigkill_s is not None else t
    for name, pod in pods.items():
        lc = out[name]
        if pod.deletion_started is not None:
            lc.deleted_s = pod.deletion_started - t0
        term = pod.last_state
        if pod.done.is_set() and term is not None and pod.terminating:
            lc.exited_s, lc.exit_code = term.finished_at - t0, term.exit_code
    return out


def surge_without_spare_gpu(
    manifest,
    *,
    variant: Variant | int = 0,
    progress_deadline_seconds: float = 30,
    timeout_s: float = 60,
) -> dict:
    """Roll `manifest` with maxSurge 1 on a node with no GPU to spare: the surge pod waits.

    The node gets exactly one GPU per replica. Returns the rollout's reason, the pending
    pod's events and the Deployment's events.
    """
    from labsupport.scenarios.errors_during_rollout.settings import manifest_with

    v = variant if isinstance(variant, Variant) else _variant(variant)
    manifest = manifest_with(manifest, max_surge=1, max_unavailable=0)
    replicas = settings(manifest)["replicas"]
    v = replace(v, node_gpus=replicas)
    dep, template, _ = _deployment(
        manifest, None, v, progress_deadline_seconds=progress_deadline_seconds
    )
    expected_s = 8 + progress_deadline_seconds * TIME_SCALE
    with dep, progress.timed(expected_s, "rollout on a full node"):
        if not dep.wait_ready(min(60.0, timeout_s)):
            raise RolloutFailed("the pods did not become ready before the rollout")
        result = dep.rollout(template.with_env(VERSION="2"), timeout_s=timeout_s)
        pending = [p for p in dep.pods if not p.scheduled]
        return {
            "succeeded": result.succeeded,
            "reason": result.reason,
            "node_gpus": v.node_gpus,
            "serving_pods": sum(p.ready for p in dep.pods),
            "pending_events": [e.line() for p in pending for e in p.events],
            "deployment_events": [e.line() for e in dep.events],
        }
