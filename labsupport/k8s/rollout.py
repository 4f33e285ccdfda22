"""The Deployment controller's rollout arithmetic, as pure functions of the pods it sees.

    >>> from labsupport.k8s.rollout import PodView, RollingUpdate, plan, max_unavailable
    >>> old = [PodView(i, new=False, available=True) for i in range(2)]
    >>> plan(old, replicas=2, strategy=RollingUpdate(max_surge=1, max_unavailable=0))
    Plan(create=1, delete=[])
    >>> fresh = PodView("n0", new=True, available=True)
    >>> plan([*old, fresh], replicas=2, strategy=RollingUpdate(max_surge=1, max_unavailable=0))
    Plan(create=0, delete=[0])
    >>> max_unavailable(RollingUpdate(max_unavailable=10), replicas=5)   # clamped to replicas
    5

From https://kubernetes.io/docs/concepts/workloads/controllers/deployment/ and the controller
(pkg/controller/deployment/rolling.go, recreate.go, util/deployment_util.go; IntOrString from
k8s.io/apimachinery/pkg/util/intstr), function for function:
- `scaled_value` is GetScaledValueFromIntOrPercent: an int, or a string "N%" of the total
  (maxSurge rounded up, maxUnavailable down); any other string is an error.
- `resolve_fenceposts` is ResolveFenceposts: (maxSurge, maxUnavailable); if both come to 0,
  maxUnavailable becomes 1. Not clamped. `max_unavailable` is MaxUnavailable, which the
  controller and `kubectl describe` use: clamped to `replicas` (0 for 0 replicas or Recreate);
  `min_available` = replicas - that. Defaults 25% and 25%.
- One sync does one step (rolloutRolling): scale the new ReplicaSet up (`new_rs_new_replicas`:
  while total pods < replicas + maxSurge), else scale old ones down (`reconcile_old`): at most
  `total - minAvailable - unavailable new`, unavailable old pods first
  (`cleanup_unhealthy`), then available ones while `available - minAvailable` allows.
- Terminating pods are not counted as replicas (they still hold the node's resources).
- Recreate: delete every old pod, wait until none is running (`old_pods_running`), then
  create the new ones.
- `deployment_complete`, `deployment_progressing`, `deployment_timed_out`: the conditions
  behind `kubectl rollout status` and progressDeadlineSeconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RollingUpdate:
    max_surge: int | str | None = "25%"  # None: unset (nil), counts as 0
    max_unavailable: int | str | None = "25%"


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


MAX_INT32 = 2**31 - 1
_INT = re.compile(r"[+-]?[0-9]+")


def int_or_percent(value: int | str) -> tuple[int, bool]:
    """getIntOrPercentValueSafely: (value, is_percent); ValueError for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"invalid type: neither int nor percentage: {value!r}")
    if isinstance(value, int):
        return value, False
    if not value.endswith("%"):
        raise ValueError(f"invalid type: string is not a percentage: {value!r}")
    digits = value[:-1]
    if not _INT.fullmatch(digits):  # strconv.Atoi
        raise ValueError(f"invalid value {value!r}: not an integer percentage")
    return int(digits), True


def scaled_value(value: int | str | None, replicas: int, round_up: bool) -> int:
    """GetScaledValueFromIntOrPercent: a count, or a percentage of `replicas` rounded the
    Kubernetes way (up for maxSurge, down for maxUnavailable)."""
    if value is None:
        raise ValueError("nil value for IntOrString")
    number, is_percent = int_or_percent(value)
    if not is_percent:
        return number
    exact = number * replicas / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(strategy: RollingUpdate, replicas: int) -> tuple[int, int]:
    """ResolveFenceposts: (maxSurge, maxUnavailable) as pod counts; None counts as 0."""
    surge = scaled_value(0 if strategy.max_surge is None else strategy.max_surge, replicas, True)
    unavailable_value = 0 if strategy.max_unavailable is None else strategy.max_unavailable
    unavailable = scaled_value(unavailable_value, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # what the controller does, so that a rollout can progress
    return surge, unavailable


def max_unavailable(strategy: RollingUpdate | Recreate, replicas: int) -> int:
    """MaxUnavailable (deployment_util.go): the fencepost clamped to `replicas`."""
    if not isinstance(strategy, RollingUpdate) or replicas == 0:
        return 0
    return min(resolve_fenceposts(strategy, replicas)[1], replicas)


def min_available(strategy: RollingUpdate | Recreate, replicas: int) -> int:
    """MinAvailable: replicas - MaxUnavailable for a rolling update, 0 for Recreate."""
    if not isinstance(strategy, RollingUpdate):
        return 0
    return replicas - max_unavailable(strategy, replicas)


def max_surge(strategy: RollingUpdate | Recreate, replicas: int) -> int:
    """MaxSurge: the surge fencepost for a rolling update, 0 for Recreate."""
    if not isinstance(strategy, RollingUpdate):
        return 0
    return resolve_fenceposts(strategy, replicas)[0]


def _worst_first(pods: list[PodView]) -> list[PodView]:
    # a ReplicaSet deletes unscheduled, then not-ready, then not-available pods first
    return sorted(pods, key=lambda p: (p.scheduled, p.ready, p.available))


def new_rs_new_replicas(
    strategy: RollingUpdate | Recreate, replicas: int, total_pods: int, new_pods: int
) -> int:
    """NewRSNewReplicas: the size the new ReplicaSet should have now."""
    if isinstance(strategy, Recreate):
        return replicas
    max_total = replicas + scaled_value(strategy.max_surge, replicas, round_up=True)
    if total_pods >= max_total:
        return new_pods  # cannot scale up
    return new_pods + min(max_total - total_pods, replicas - new_pods)


def cleanup_unhealthy(old: list[PodView], max_cleanup: int) -> list[PodView]:
    """cleanupUnhealthyReplicas: up to `max_cleanup` unavailable old pods, worst first."""
    return [p for p in _worst_first(old) if not p.available][: max(0, max_cleanup)]


def scale_down_old(
    pods: list[PodView], old: list[PodView], replicas: int, strategy: RollingUpdate
) -> list[PodView]:
    """scaleDownOldReplicaSetsForRollingUpdate: old pods to delete while the available pods
    (all of them, new ones too) stay at or above minAvailable."""
    room = sum(p.available for p in pods) - min_available(strategy, replicas)
    return _worst_first(old)[: max(0, room)]


def reconcile_old(pods: list[PodView], replicas: int, strategy: RollingUpdate) -> list:
    """reconcileOldReplicaSets: the keys of the old pods to delete in this sync."""
    old = [p for p in pods if not p.new]
    if not old:
        return []
    new_unavailable = sum(not p.available for p in pods if p.new)
    max_scaled_down = len(pods) - min_available(strategy, replicas) - new_unavailable
    if max_scaled_down <= 0:
        return []
    doomed = cleanup_unhealthy(old, max_scaled_down)
    rest = [p for p in old if all(p is not d for d in doomed)]
    doomed += scale_down_old(pods, rest, replicas, strategy)
    return [p.key for p in doomed]


def old_pods_running(old_phases: list[str]) -> bool:
    """recreate.go oldPodsRunning: an old pod still counts unless Failed or Succeeded."""
    return any(phase not in ("Failed", "Succeeded") for phase in old_phases)


def plan(
    pods: list[PodView],
    replicas: int,
    strategy: RollingUpdate | Recreate,
    old_still_terminating: bool = False,
) -> Plan:
    """One controller sync: how many new pods to create, which pods to delete."""
    new = [p for p in pods if p.new]
    old = [p for p in pods if not p.new]
    if len(new) > replicas:  # reconcileNewReplicaSet: scale the new ReplicaSet down
        return Plan(delete=[p.key for p in _worst_first(new)[: len(new) - replicas]])
    if isinstance(strategy, Recreate):
        if old:
            return Plan(delete=[p.key for p in old])
        if old_still_terminating:
            return Plan()
        return Plan(create=replicas - len(new))
    target = new_rs_new_replicas(strategy, replicas, len(pods), len(new))
    if target > len(new):
        return Plan(create=target - len(new))
    return Plan(delete=reconcile_old(pods, replicas, strategy))


@dataclass(frozen=True)
class DeploymentStatus:
    """The counts of a Deployment's status (non-terminating pods)."""

    replicas: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0


def deployment_complete(replicas: int, status: DeploymentStatus) -> bool:
    """DeploymentComplete: every desired replica updated and available, no old pods left."""
    return status.updated == replicas and status.replicas == replicas == status.available


def deployment_progressing(before: DeploymentStatus, after: DeploymentStatus) -> bool:
    """DeploymentProgressing: more updated, fewer old, more ready or more available pods."""
    old_before = before.replicas - before.updated
    old_after = after.replicas - after.updated
    return (
        after.updated > before.updated
        or old_after < old_before
        or after.ready > before.ready
        or after.available > before.available
    )


def deployment_timed_out(
    progress_deadline_seconds: float | None, seconds_since_progress: float
) -> bool:
    """DeploymentTimedOut: no progress for longer than progressDeadlineSeconds (strictly);
    never without a deadline or with MaxInt32 (HasProgressDeadline)."""
    if progress_deadline_seconds is None or progress_deadline_seconds == MAX_INT32:
        return False
    return seconds_since_progress > progress_deadline_seconds


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
