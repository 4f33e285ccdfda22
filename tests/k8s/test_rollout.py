"""The Deployment controller's arithmetic, simulated without processes."""

from __future__ import annotations

import pytest

from labsupport.k8s.rollout import (
    PodView,
    Recreate,
    RollingUpdate,
    plan,
    resolve_fenceposts,
    scaled_value,
)


@pytest.mark.parametrize(
    "surge,unavailable,replicas,want",
    [
        ("25%", "25%", 2, (1, 0)),  # 0.5 rounds up for surge, down for unavailable
        ("25%", "25%", 4, (1, 1)),
        ("50%", "50%", 3, (2, 1)),
        (0, 0, 3, (0, 1)),  # both zero: the controller uses maxUnavailable 1
        (1, 0, 2, (1, 0)),
    ],
)
def test_fenceposts(surge, unavailable, replicas, want):
    assert resolve_fenceposts(RollingUpdate(surge, unavailable), replicas) == want


def test_bad_percentage_is_rejected():
    with pytest.raises(ValueError):
        scaled_value("25", 4, round_up=True)


def _simulate(replicas: int, strategy, ready_after_steps: int = 1):
    """Play the rollout: new pods become available `ready_after_steps` syncs after creation."""
    pods = {f"old{i}": {"new": False, "age": 99} for i in range(replicas)}
    seen_total, seen_available, steps = [], [], 0
    while not (
        len(pods) == replicas
        and all(p["new"] and p["age"] >= ready_after_steps for p in pods.values())
    ):
        views = [PodView(k, p["new"], p["age"] >= ready_after_steps) for k, p in pods.items()]
        step = plan(views, replicas, strategy)
        for k in step.delete:
            del pods[k]
        for i in range(step.create):
            pods[f"new{steps}-{i}"] = {"new": True, "age": 0}
        for p in pods.values():
            p["age"] += 1
        seen_total.append(len(pods))
        seen_available.append(sum(p["age"] > ready_after_steps for p in pods.values()))
        steps += 1
        assert steps < 100, "the rollout does not converge"
    return max(seen_total), min(seen_available), steps


@pytest.mark.parametrize(
    "replicas,surge,unavailable", [(2, 1, 0), (2, 0, 1), (4, "25%", "25%"), (5, 2, 1), (3, 0, 0)]
)
def test_rolling_update_respects_surge_and_unavailable(replicas, surge, unavailable):
    strategy = RollingUpdate(surge, unavailable)
    max_surge, max_unavailable = resolve_fenceposts(strategy, replicas)
    most, fewest, _ = _simulate(replicas, strategy)
    assert most <= replicas + max_surge
    assert fewest >= replicas - max_unavailable


def test_unavailable_old_pods_go_first():
    views = [
        PodView("ok", False, True),
        PodView("broken", False, False, ready=False),
        PodView("new", True, True),
    ]
    # the broken pod goes first; then 'ok' too, since 'new' alone keeps minAvailable (1)
    assert plan(views, 2, RollingUpdate(0, 1)).delete == ["broken", "ok"]
    assert plan(views, 2, RollingUpdate(1, 0)).delete == ["broken"]


def test_recreate_deletes_all_then_waits_for_them():
    old = [PodView(i, False, True) for i in range(3)]
    assert plan(old, 3, Recreate()).delete == [0, 1, 2]
    assert plan([], 3, Recreate(), old_still_terminating=True).create == 0
    assert plan([], 3, Recreate()).create == 3


def test_scale_down_removes_the_least_ready():
    views = [
        PodView("a", True, True),
        PodView("b", True, False, ready=False),
        PodView("c", True, True, scheduled=False),
    ]
    assert plan(views, 1, RollingUpdate()).delete == ["c", "b"]
