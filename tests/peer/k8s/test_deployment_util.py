"""Peer cases: the Deployment controller's helpers (fenceposts, new size, conditions).

Ported from kubernetes/kubernetes
pkg/controller/deployment/util/deployment_util_test.go
at commit 00216e4596922fe546c0e5548921d01e2d91db12, run against `labsupport.k8s.rollout`.
The code they test, MaxUnavailable's clamp included, was read in deployment_util.go at commit
277391ee713412cf75e4b46ad5d6e5ae9844abf1. A Go `deployment(...)` with status counts is a
`DeploymentStatus`; `nil` is None; `math.MaxInt32` is `MAX_INT32`. Out of scope (ReplicaSet
objects, annotations, template hashing): docs/peer_scope.md.
"""

from __future__ import annotations

import pytest

from labsupport.k8s import describe
from labsupport.k8s.rollout import (
    MAX_INT32,
    DeploymentStatus,
    Recreate,
    RollingUpdate,
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    max_unavailable,
    min_available,
    new_rs_new_replicas,
    resolve_fenceposts,
)
from labsupport.scenarios.errors_during_rollout import settings as rollout_settings

SOURCE = "deployment_util_test.go @ 00216e4596922fe546c0e5548921d01e2d91db12"


@pytest.mark.parametrize(
    "surge,unavailable,desired,want",
    [
        pytest.param("0%", "0%", 0, (0, 1), id="0"),
        pytest.param("39%", "39%", 10, (4, 3), id="1"),
        pytest.param("oops", "39%", 10, ValueError, id="2"),
        pytest.param("55%", "urg", 10, ValueError, id="3"),
        pytest.param(None, "39%", 10, (0, 3), id="4"),
        pytest.param("39%", None, 10, (4, 0), id="5"),
        pytest.param(None, None, 10, (0, 1), id="6"),
    ],
)
def test_resolve_fenceposts(surge, unavailable, desired, want):
    """TestResolveFenceposts (deployment_util_test.go @ 00216e45)."""
    strategy = RollingUpdate(surge, unavailable)
    if want is ValueError:
        with pytest.raises(ValueError):
            resolve_fenceposts(strategy, desired)
    else:
        assert resolve_fenceposts(strategy, desired) == want


@pytest.mark.parametrize(
    "strategy,replicas,new_pods,max_surge,want",
    [
        pytest.param("RollingUpdate", 1, 5, 1, 5, id="can not scale up - to newRSReplicas"),
        pytest.param("RollingUpdate", 6, 2, 10, 6, id="scale up - to depReplicas"),
        pytest.param("Recreate", 3, 1, 1, 3, id="recreate - to depReplicas"),
    ],
)
def test_new_rs_new_replicas(strategy, replicas, new_pods, max_surge, want):
    """TestNewRSNewReplicas (deployment_util_test.go @ 00216e45): allRSs is one RS of 5."""
    kind = RollingUpdate(max_surge, 1) if strategy == "RollingUpdate" else Recreate()
    assert new_rs_new_replicas(kind, replicas, total_pods=5, new_pods=new_pods) == want


def _status(current, updated, available, ready=0):
    return DeploymentStatus(replicas=current, updated=updated, ready=ready, available=available)


@pytest.mark.parametrize(
    "desired,current,updated,available,want",
    [
        pytest.param(5, 5, 5, 4, False, id="not complete: min but not all pods available"),
        pytest.param(5, 5, 5, 3, False, id="not complete: min availability is not honored"),
        pytest.param(5, 5, 5, 5, True, id="complete"),
        pytest.param(5, 5, 4, 5, False, id="not complete: all available but not updated"),
        pytest.param(1, 2, 1, 1, False, id="not complete: still running old pods"),
        pytest.param(1, 1, 1, 0, False, id="not complete: one replica never comes up"),
    ],
)
def test_deployment_complete(desired, current, updated, available, want):
    """TestDeploymentComplete (deployment_util_test.go @ 00216e45); the strategy's
    maxUnavailable and maxSurge in the table do not enter DeploymentComplete."""
    assert deployment_complete(desired, _status(current, updated, available)) is want


def _counts(current, updated, ready, available):
    return DeploymentStatus(current, updated, ready, available)


@pytest.mark.parametrize(
    "before,after,want",
    [
        pytest.param((10, 4, 4, 4), (10, 6, 4, 4), True, id="progressing: updated pods"),
        pytest.param((10, 4, 4, 4), (10, 4, 4, 4), False, id="not progressing"),
        pytest.param((10, 4, 6, 6), (8, 4, 6, 6), True, id="progressing: old pods removed"),
        pytest.param((10, 7, 3, 3), (10, 6, 3, 3), False, id="not progressing: less new pods"),
        pytest.param(
            (10, 4, 7, 7), (8, 8, 5, 5), True, id="progressing: less overall but more new pods"
        ),
        pytest.param((10, 10, 9, 8), (10, 10, 10, 8), True, id="progressing: more ready pods"),
        pytest.param(
            (10, 10, 10, 9), (10, 10, 10, 10), True, id="progressing: more available pods"
        ),
    ],
)
def test_deployment_progressing(before, after, want):
    """TestDeploymentProgressing (deployment_util_test.go @ 00216e45)."""
    assert deployment_progressing(_counts(*before), _counts(*after)) is want


@pytest.mark.parametrize(
    "deadline,since_progress_s,want",
    [
        pytest.param(None, 11, False, id="nil progressDeadlineSeconds specified - no timeout"),
        pytest.param(MAX_INT32, 11, False, id="infinite progressDeadlineSeconds - no timeout"),
        pytest.param(10, 11, True, id="progressDeadlineSeconds: 10s, 00:01:20 - 00:01:09"),
        pytest.param(10, 9, False, id="progressDeadlineSeconds: 10s, 00:01:20 - 00:01:11"),
        pytest.param(None, 0, False, id="previous status was a complete deployment"),
    ],
)
def test_deployment_timed_out(deadline, since_progress_s, want):
    """TestDeploymentTimedOut (deployment_util_test.go @ 00216e45). The last case has no
    deadline either (nil), which is what decides it in DeploymentTimedOut."""
    assert deployment_timed_out(deadline, since_progress_s) is want


MAX_UNAVAILABLE_CASES = [
    pytest.param(10, 5, 5, id="maxUnavailable less than replicas"),
    pytest.param(10, 10, 10, id="maxUnavailable equal replicas"),
    pytest.param(5, 10, 5, id="maxUnavailable greater than replicas"),
    pytest.param(0, 10, 0, id="maxUnavailable with replicas is 0"),
    pytest.param(10, None, 0, id="maxUnavailable with Recreate deployment strategy"),
    pytest.param(10, "50%", 5, id="maxUnavailable less than replicas with percents"),
    pytest.param(10, "100%", 10, id="maxUnavailable equal replicas with percents"),
    pytest.param(5, "100%", 5, id="maxUnavailable greater than replicas with percents"),
]


@pytest.mark.parametrize("replicas,unavailable,want", MAX_UNAVAILABLE_CASES)
def test_max_unavailable(replicas, unavailable, want):
    """TestMaxUnavailable (deployment_util_test.go @ 00216e45): maxSurge 1; None = Recreate."""
    strategy = Recreate() if unavailable is None else RollingUpdate(1, unavailable)
    assert max_unavailable(strategy, replicas) == want


@pytest.mark.parametrize(
    "replicas,unavailable,want",
    [
        pytest.param(10, 5, 5, id="replicas greater than maxUnavailable"),
        pytest.param(10, 10, 0, id="replicas equal maxUnavailable"),
        pytest.param(5, 10, 0, id="replicas less than maxUnavailable"),
        pytest.param(0, 10, 0, id="replicas is 0"),
        pytest.param(10, None, 0, id="minAvailable with Recreate deployment strategy"),
        pytest.param(10, "60%", 4, id="replicas greater than maxUnavailable with percents"),
        pytest.param(10, "100%", 0, id="replicas equal maxUnavailable with percents"),
        pytest.param(5, "100%", 0, id="replicas less than maxUnavailable with percents"),
    ],
)
def test_min_available(replicas, unavailable, want):
    """TestMinAvailable (deployment_util_test.go @ 00216e45): maxSurge 1; None = Recreate."""
    strategy = Recreate() if unavailable is None else RollingUpdate(1, unavailable)
    assert min_available(strategy, replicas) == want


# ---- where the lab shows those numbers --------------------------------------------------------
def test_describe_and_lab_settings_clamp_max_unavailable():
    """MaxUnavailable's clamp (deployment_util.go @ 277391ee) where a learner reads it:
    `kubectl describe deployment` and lab 299's manifest settings (replicas 5, maxUnavailable
    10 -> 5 and a minimum available of 0, not 10 and -5)."""
    manifest = rollout_settings.manifest_with(
        rollout_settings.production_manifest(), max_surge=1, max_unavailable=10
    )
    manifest = manifest.replace("replicas: 2", "replicas: 5")
    s = rollout_settings.settings(manifest)
    assert (s["replicas"], s["max_unavailable"], s["max_surge"]) == (5, 5, 1)

    class Dep:  # what describe_deployment reads of a Deployment, without processes
        name, replicas, strategy, min_ready_seconds = "llm", 5, RollingUpdate(1, 10), 0
        timing = type("T", (), {"time_scale": 0.1})()
        balancer, endpoints, revision, pods, events = None, [], "abc", [], []
        event_log = type("L", (), {"for_object": staticmethod(lambda *a: [])})()

        def counts(self):
            return {"replicas": 0, "updated": 0, "available": 0, "ready": 0}

    text = describe.describe_deployment(Dep())
    assert "10 max unavailable, 1 max surge (= 5 and 1 pods)" in text
