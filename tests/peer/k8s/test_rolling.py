"""Peer cases: rolling updates and Recreate, one controller sync at a time.

Ported from kubernetes/kubernetes pkg/controller/deployment/rolling_test.go at commit
00bdb3fade2ef1ada898bd8fae2c6a1958da3a5d (the same four tables, same numbers, are in the
current file, which adds feature-gated PodReplacementPolicy cases; the one that applies to the
default policy is ported below) and pkg/controller/deployment/recreate_test.go at commit
f77451e4e879907a21acdc62346dc4af0b875561, run against `labsupport.k8s.rollout`.

A ReplicaSet of N replicas with A available is N `PodView`s, A of them available; the
controller's actions are read from `plan` (one sync) or from the function the Go test calls
(`reconcile_old`, `cleanup_unhealthy`, `scale_down_old`, `old_pods_running`).
"""

from __future__ import annotations

import pytest

from labsupport.k8s.rollout import (
    PodView,
    Recreate,
    RollingUpdate,
    cleanup_unhealthy,
    old_pods_running,
    plan,
    reconcile_old,
    scale_down_old,
)

ROLLING = "rolling_test.go @ 00bdb3fade2ef1ada898bd8fae2c6a1958da3a5d"
RECREATE = "recreate_test.go @ f77451e4e879907a21acdc62346dc4af0b875561"


def _pods(prefix: str, n: int, available: int, new: bool) -> list[PodView]:
    return [
        PodView(f"{prefix}{i}", new=new, available=i < available, ready=i < available)
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "replicas,surge,old,new,want_new",
    [
        pytest.param(10, 0, 10, 0, None, id="should not scale up"),
        pytest.param(10, 2, 10, 0, 2, id="scale up by maxSurge over a saturated old RS"),
        pytest.param(10, 2, 5, 0, 7, id="scale up according to the maxSurge"),
        pytest.param(10, 2, 10, 2, None, id="should not scale when maxSurge is saturated"),
        pytest.param(10, 2, 2, 11, 10, id="should scale down above the replicas"),
    ],
)
def test_reconcile_new_replica_set(replicas, surge, old, new, want_new):
    """TestDeploymentController_reconcileNewReplicaSet (rolling_test.go @ 00bdb3fa);
    maxUnavailable 0; the new ReplicaSet has no available pods."""
    pods = _pods("old", old, old, new=False) + _pods("new", new, 0, new=True)
    step = plan(pods, replicas, RollingUpdate(surge, 0))
    deleted_new = [k for k in step.delete if k.startswith("new")]
    if want_new is None:
        assert step.create == 0 and not deleted_new
    else:
        assert new + step.create - len(deleted_new) == want_new


@pytest.mark.parametrize(
    "policy", ["with empty policy", "with TerminationStarted policy"], ids=lambda p: p
)
def test_reconcile_new_ignores_terminating_pods(policy):
    """reconcileNewReplicaSet, "should scale up according to the maxSurge {policy} and ignore
    terminating pods" (the current rolling_test.go, read without a commit id; both are the
    default TerminationStarted behaviour): 5 old and 11 terminating pods -> 7 new."""
    pods = _pods("old", 5, 5, new=False)  # the 1 + 10 terminating pods are not PodViews
    assert plan(pods, 10, RollingUpdate(2, 0)).create == 7


@pytest.mark.parametrize(
    "replicas,unavailable,old,new,ready_old,ready_new,want_old",
    [
        pytest.param(10, 0, 10, 0, 10, 0, 9, id="0"),
        pytest.param(10, 2, 10, 0, 10, 0, 8, id="1"),
        pytest.param(10, 2, 10, 0, 8, 0, 8, id="2-unhealthy old pods cleaned up"),
        pytest.param(10, 2, 10, 0, 9, 0, 8, id="3-one unhealthy cleaned up, one ready scaled down"),
        pytest.param(10, 2, 8, 2, 8, 0, None, id="4-unavailable new pods block a further step"),
    ],
)
def test_reconcile_old_replica_sets(
    replicas, unavailable, old, new, ready_old, ready_new, want_old
):
    """TestDeploymentController_reconcileOldReplicaSets (rolling_test.go @ 00bdb3fa);
    maxSurge 0."""
    pods = _pods("old", old, ready_old, new=False) + _pods("new", new, ready_new, new=True)
    doomed = reconcile_old(pods, replicas, RollingUpdate(0, unavailable))
    if want_old is None:
        assert doomed == []
    else:
        assert old - len(doomed) == want_old
        assert all(k.startswith("old") for k in doomed)


@pytest.mark.parametrize(
    "old,ready,max_cleanup,want",
    [
        pytest.param(10, 8, 1, 1, id="0"),
        pytest.param(10, 8, 3, 2, id="1"),
        pytest.param(10, 8, 0, 0, id="2"),
        pytest.param(10, 10, 3, 0, id="3"),
    ],
)
def test_cleanup_unhealthy_replicas(old, ready, max_cleanup, want):
    """TestDeploymentController_cleanupUnhealthyReplicas (rolling_test.go @ 00bdb3fa)."""
    doomed = cleanup_unhealthy(_pods("old", old, ready, new=False), max_cleanup)
    assert len(doomed) == want and not any(p.available for p in doomed)


@pytest.mark.parametrize(
    "replicas,unavailable,ready,old,want_old",
    [
        pytest.param(10, 0, 10, 10, 9, id="0"),
        pytest.param(10, 2, 10, 10, 8, id="1"),
        pytest.param(10, 2, 8, 10, None, id="2"),
        pytest.param(10, 2, 1, 10, None, id="4"),
    ],
)
def test_scale_down_old_replica_sets_for_rolling_update(
    replicas, unavailable, ready, old, want_old
):
    """TestDeploymentController_scaleDownOldReplicaSetsForRollingUpdate (rolling_test.go @
    00bdb3fa); maxSurge 0, allRSs is the old ReplicaSet alone. Case 3 (an RS of 0 replicas
    with 10 ready pods) is out of scope: docs/peer_scope.md."""
    pods = _pods("old", old, ready, new=False)
    doomed = scale_down_old(pods, pods, replicas, RollingUpdate(0, unavailable))
    if want_old is None:
        assert doomed == []
    else:
        assert old - len(doomed) == want_old


def test_scale_down_old_replica_sets_for_recreate():
    """TestScaleDownOldReplicaSets (recreate_test.go @ f77451e4): an old RS of 3 goes to 0."""
    pods = _pods("old", 3, 3, new=False)
    assert sorted(plan(pods, 3, Recreate()).delete) == ["old0", "old1", "old2"]
    assert plan([], 3, Recreate(), old_still_terminating=True).create == 0


@pytest.mark.parametrize(
    "phases,want",
    [
        pytest.param([], False, id="no old RSs"),
        pytest.param(["", "", "", ""], True, id="old RSs with running pods"),
        pytest.param([], False, id="old RSs without pods or non-zero status replicas"),
        pytest.param(["Failed", "Succeeded"], False, id="zero status replicas, terminal pods"),
        pytest.param(["Unknown"], True, id="zero status replicas, pod in unknown phase"),
        pytest.param(["Pending"], True, id="zero status replicas with pending pod"),
        pytest.param(["Running"], True, id="zero status replicas with running pod"),
        pytest.param(["Failed", "Succeeded", "Pending"], True, id="terminal and pending pods"),
    ],
)
def test_old_pods_running(phases, want):
    """TestOldPodsRunning (recreate_test.go @ f77451e4); the case "old RSs without pods but
    with non-zero status replicas" is out of scope (no ReplicaSet status): peer_scope.md."""
    assert old_pods_running(phases) is want
