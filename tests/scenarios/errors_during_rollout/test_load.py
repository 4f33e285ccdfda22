"""Lab 299's workload: real rollouts under load, the pods' lifecycles, the GPU-headroom stall."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from labsupport.k8s.events import Event
from labsupport.k8s.spec import Terminated
from labsupport.scenarios.errors_during_rollout import load, variant
from labsupport.scenarios.errors_during_rollout import settings as rs


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
    out = load._lifecycles(pods, {"old-a"}, events, t0)
    old, new = out["old-a"], out["new-b"]
    assert (old.revision, new.revision) == ("old", "new")
    assert old.created_s == -5 and old.deleted_s == 1.0 and old.pre_stop_s == 1.0
    assert old.endpoint_removed_s == pytest.approx(1.3) and old.sigterm_s == 1.5
    assert old.sigkill_s == 2.0 and old.exit_code == 137 and old.exited_s == pytest.approx(2.01)
    assert new.endpoint_added_s == 1.0 and new.deleted_s is None and new.exited_s is None


def test_load_follows_the_variant():
    v = variant(1)
    conf = load.LoadConfig.of(v)
    assert (conf.clients, conf.max_tokens, conf.seed) == (v.clients, v.max_tokens, 1)
    assert load.LoadConfig.of(v, seed=9).seed == 9


@pytest.mark.timeout(150)
def test_a_production_rollout_loses_requests_on_old_pods_only():
    # the lab's diagnosis check measures the same run: one rollout per session for both
    from tests.labs.test_299_errors_during_rollout import production_run

    v = variant(0)
    run = production_run(0)
    assert run.succeeded and run.failed and run.seed == 0, run.summary()
    assert run.settings["handler"] == "the server's own" and run.settings["pre_stop"] is None
    old = {n: p for n, p in run.pods.items() if p.revision == "old"}
    assert len(old) == v.replicas and len(run.pods) == 2 * v.replicas
    assert all(r.backend in old or r.backend is None for r in run.failed)
    for p in old.values():
        assert p.deleted_s <= p.endpoint_removed_s and p.sigterm_s <= p.exited_s
        assert p.sigterm_s == pytest.approx(p.deleted_s, abs=0.1)  # no hook: SIGTERM at once
        assert p.pre_stop_s is None and p.sigkill_s is None and p.exit_code == 0
        # the balancer learns of the deletion the variant's propagation later
        lag = (p.endpoint_removed_s - p.deleted_s) / rs.TIME_SCALE
        assert v.propagation_s - 0.5 <= lag <= v.propagation_s + 3, lag
    assert {r.backend for r in run.requests} <= set(run.pods) | {None}
    assert "preStop" not in run.summary()  # the summary says what happened, not the settings
    assert "no preStop" in run.settings_line() and "exit" in run.pod_table()
    assert any("Sent SIGTERM" in line for line in run.event_lines())


@pytest.mark.timeout(120)
def test_max_surge_without_a_spare_gpu_stalls_the_rollout():
    v = variant(0)
    stall = load.surge_without_spare_gpu(v.production, variant=v, progress_deadline_seconds=10)
    assert not stall["succeeded"] and stall["reason"] == "ProgressDeadlineExceeded"
    assert stall["serving_pods"] == v.replicas and stall["node_gpus"] == v.replicas
    assert any("Insufficient nvidia.com/gpu" in line for line in stall["pending_events"])
