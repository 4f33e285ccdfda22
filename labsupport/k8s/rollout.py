"""The Deployment controller's rollout arithmetic, as a pure function of the pods it sees.

    >>> from labsupport.k8s.rollout import PodView, RollingUpdate, plan
    >>> old = [PodView(i, new=False, available=True) for i in range(2)]
    >>> plan(old, replicas=2, strategy=RollingUpdate(max_surge=1, max_unavailable=0))
    Plan(create=1, delete=[])
    >>> fresh = PodView("n0", new=True, available=True)
    >>> plan([*old, fresh], replicas=2, strategy=RollingUpdate(max_surge=1, max_unavailable=0))
    Plan(create=0, delete=[0])

From https://kubernetes.io/docs/concepts/workloads/controllers/deployment/ and the controller
(pkg/controller/deployment/rolling.go):
- maxSurge: a count or a percentage of replicas, rounded up; maxUnavailable: rounded down; if
  both come to 0, maxUnavailable becomes 1. Defaults 25% and 25%.
- Scale up first: new pods while total pods < replicas + maxSurge (one sync does one step).
- Then scale down old pods: at most `total - (replicas - maxUnavailable) - unavailable new`,
  unavailable old pods first, available ones only while `available - minAvailable` allows.
- Terminating pods are not counted as replicas (they still hold the node's resources).
- Recreate: delete every old pod, wait until they are gone, then create the new ones.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RollingUpdate:
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"


@dataclass(frozen=True)
class Recreate:
    pass


@dataclass(frozen=True)
class PodView:
    """What the controller needs to know about one non-terminating pod."""

    key: Hashable
    new: bool  # of the current template
    available: bool  # ready for at least minReadySeconds
    ready: bool = True
    scheduled: bool = True


@dataclass
class Plan:
    create: int = 0
    delete: list = field(default_factory=list)  # keys, worst pods first


def scaled_value(value: int | str, replicas: int, round_up: bool) -> int:
    """An IntOrString count or percentage of `replicas`, rounded the Kubernetes way."""
    if isinstance(value, str):
        if not value.endswith("%") or not value[:-1].isdigit():
            raise ValueError(f"{value!r} is neither an integer nor a percentage like '25%'")
        exact = int(value[:-1]) * replicas / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def resolve_fenceposts(strategy: RollingUpdate, replicas: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts."""
    surge = scaled_value(strategy.max_surge, replicas, round_up=True)
    unavailable = scaled_value(strategy.max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # what the controller does, so that a rollout can progress
    return surge, unavailable


def _worst_first(pods: list[PodView]) -> list[PodView]:
    # a ReplicaSet deletes unscheduled, then not-ready, then not-available pods first
    return sorted(pods, key=lambda p: (p.scheduled, p.ready, p.available))


def plan(
    pods: list[PodView],
    replicas: int,
    strategy: RollingUpdate | Recreate,
    old_still_terminating: bool = False,
) -> Plan:
    """One controller sync: how many new pods to create, which pods to delete."""
    new = [p for p in pods if p.new]
    old = [p for p in pods if not p.new]
    if len(new) > replicas:  # scaled down
        return Plan(delete=[p.key for p in _worst_first(new)[: len(new) - replicas]])
    if isinstance(strategy, Recreate):
        if old:
            return Plan(delete=[p.key for p in old])
        if old_still_terminating:
            return Plan()
        return Plan(create=replicas - len(new))
    surge, unavailable = resolve_fenceposts(strategy, replicas)
    if len(new) < replicas:
        n = min(replicas + surge - len(pods), replicas - len(new))
        if n > 0:
            return Plan(create=n)
    if not old:
        return Plan()
    min_available = replicas - unavailable
    new_unavailable = sum(not p.available for p in new)
    max_scaled_down = len(pods) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return Plan()
    doomed = [p for p in _worst_first(old) if not p.available][:max_scaled_down]
    scale_down = sum(p.available for p in pods) - min_available
    room = max(0, min(scale_down, max_scaled_down - len(doomed)))
    doomed += [p for p in old if p.available][:room]
    return Plan(delete=[p.key for p in doomed])


@dataclass
class RolloutResult:
    succeeded: bool
    reason: str  # Complete | ProgressDeadlineExceeded | Timeout | Closed
    revision: str
    duration_s: float  # until the new pods are available and the old ones deleted
    drained_s: float  # until every old process has exited too
    max_pods: int  # most pods holding a process at once, terminating ones included
    min_available: int  # fewest available pods seen during the rollout
    events: list = field(default_factory=list)
