"""Lab 299's workload: real rollouts under load, the pods' lifecycles, the GPU-headroom stall."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from labsupport.k8s import rollout_load
from labsupport.k8s import rollout_settings as rs
from labsupport.k8s.events import Event
from labsupport.k8s.spec import Terminated


def _event(t, kind, name, reason, message):
    return Event(kind, name, "Normal", reason, message, "test", t, t)


def test_lifecycles_are_read_from_events_and_pods():
    t0 = 1000.0
    events = [
        _event(t0 - 5, "Pod", "old-a", "Scheduled", "Successfully assigned"),
        _event(t0 + 0.1, "Pod", "new-b", "Scheduled", "Successfully assigned"),
        _event(t0 + 1.0, "Service", "llm", "EndpointsSynced", "balancer routes to 2 (+new-b)"),
        _event(t0 + 1.0, "Pod", "old-a", "PreStopHook", "Running preStop hook"),
        _event(t0 + 1.3, "Service", "llm", "EndpointsSynced", "routes to 1 endpoint(s) (-old-a)"),
        _event(t0 + 1.5, "Pod", "old-a", "Signal", "Sent SIGTERM to container app"),
        _event(t0 + 2.0, "Pod", "old-a", "Signal", "Grace period of 10s expired: sent SIGKILL"),
    ]
    done = SimpleNamespace(is_set=lambda: True)
    pods = {
        "old-a": SimpleNamespace(
            deletion_started=t0 + 1.0,
            last_state=Terminated(137, "Error", t0 - 5, t0 + 2.01),
            done=done,
            terminating=True,
        ),
        "new-b": SimpleNamespace(
            deletion_started=None, last_state=None, done=done, terminating=False
        ),
    }
    out = rollout_load._lifecycles(pods, {"old-a"}, events, t0)
    old, new = out["old-a"], out["new-b"]
    assert (old.revision, new.revision) == ("old", "new")
    assert old.created_s == -5 and old.deleted_s == 1.0 and old.pre_stop_s == 1.0
    assert old.endpoint_removed_s == pytest.approx(1.3) and old.sigterm_s == 1.5
    assert old.sigkill_s == 2.0 and old.exit_code == 137 and old.exited_s == pytest.approx(2.01)
    assert new.endpoint_added_s == 1.0 and new.deleted_s is None and new.exited_s is None


@pytest.mark.timeout(150)
def test_default_rollout_loses_requests_on_old_pods_and_a_drain_loses_none():
    default = rollout_load.run_rollout(arm="default")
    assert default.succeeded and default.failed
    old = {n for n, p in default.pods.items() if p.revision == "old"}
    assert all(r.backend in old or r.backend is None for r in default.failed)
    assert len(old) == 2 and all(default.pods[n].sigterm_s is not None for n in old)
    assert "truncated" in default.by_status and default.success_pct < 100
    t = time.perf_counter()
    fixed = rollout_load.run_rollout(
        rs.manifest_with(pre_stop_s=10, grace_s=60, drain_s=40, max_unavailable=0), "drain"
    )
    assert time.perf_counter() - t < 60
    assert fixed.succeeded and not fixed.failed and fixed.sigkills == 0, fixed.summary()
    for p in fixed.pods.values():
        if p.revision == "old":
            assert p.deleted_s <= p.endpoint_removed_s <= p.sigterm_s <= p.exited_s
            assert p.pre_stop_s == pytest.approx(p.deleted_s, abs=0.1) and p.exit_code == 0
    assert {r.backend for r in fixed.requests} <= set(fixed.pods)
    assert "preStop 10 s" in fixed.summary() and "exit" in fixed.pod_table()


@pytest.mark.timeout(120)
def test_max_surge_without_a_spare_gpu_stalls_the_rollout():
    fixed = rs.manifest_with(pre_stop_s=10, grace_s=60, drain_s=40, max_unavailable=0)
    stall = rollout_load.surge_without_spare_gpu(fixed, node_gpus=2, progress_deadline_seconds=20)
    assert not stall["succeeded"] and stall["reason"] == "ProgressDeadlineExceeded"
    assert stall["serving_pods"] == 2
    assert any("Insufficient nvidia.com/gpu" in line for line in stall["pending_events"])
