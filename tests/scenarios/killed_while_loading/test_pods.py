"""Lab 288's pods under the supervisor: the restart loop, the startup probe, a later hang."""

from __future__ import annotations

import pytest

from labsupport.k8s import manifests
from labsupport.scenarios.killed_while_loading import starts as sb
from labsupport.scenarios.killed_while_loading import pods as sr

pytestmark = pytest.mark.timeout(90)

STARTUP = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5}


def test_liveness_only_kills_every_start_while_loading():
    run = sr.run_pod(sb.LIVENESS_ONLY, sb.INCIDENT, window_s=8)
    assert run.ready_s is None and run.starts >= 2
    assert run.killed_while_loading >= 2
    done = run.containers[:-1]  # the last one was stopped by the end of the run
    assert {c.killed_by for c in done} == {"liveness"}
    assert {c.exit_code for c in done} == {143}, "SIGTERM during the load"
    assert all(not c.phases for c in done), "killed before its startup line"
    assert run.restart_count == run.starts - 1
    assert "Liveness probe failed" in run.describe and "connection refused" in run.describe
    kill = run.event_times("Killing", "liveness")[0]
    assert 2.4 <= kill <= 3.5, "the third failure: 5 + 2 x 10 manifest seconds after the start"
    assert run.event_times("BackOff"), "the second restart waits"


def test_startup_probe_gets_ready_once_and_liveness_catches_the_hang():
    fixed = sb.with_startup_probe(sb.LIVENESS_ONLY, {**STARTUP, "failureThreshold": 30})
    run = sr.run_pod(fixed, sb.SMALL, window_s=30, hang_after_ready=True)
    assert run.ready_s is not None and run.restarts_before_ready == 0
    assert run.starts_until_ready == 1 and run.killed_while_loading == 0
    first = run.containers[0]
    assert first.port_open_s is not None and first.port_open_s <= run.ready_s
    assert first.phases["slow_start_s"] == sb.SMALL.compile_s
    assert not [t for t in run.probe_failures("Liveness") if t < run.ready_s], "gated"
    assert run.probe_failures("Startup"), "the startup probe saw the closed port"
    assert run.hang_detected_seconds is not None
    assert run.hang_detected_seconds <= sb.HANG_BOUND_SECONDS
    assert first.killed_by == "liveness"


def test_a_long_liveness_delay_misses_the_hang():
    """The grader's teeth: a giant startup budget plus a giant liveness delay fails."""
    fixed = sb.with_startup_probe(sb.LIVENESS_ONLY, {**STARTUP, "failureThreshold": 1000})
    fixed = fixed.replace("initialDelaySeconds: 5", "initialDelaySeconds: 600")
    run = sr.run_pod(fixed, sb.SMALL, window_s=30, hang_after_ready=True, hang_timeout_s=8)
    assert run.ready_s is not None and run.hang_s is not None
    assert run.hang_detected_seconds is None


def test_run_pod_refuses_what_it_cannot_run():
    with pytest.raises(manifests.ManifestError, match="periodSecond"):
        sr.run_pod(sb.LIVENESS_ONLY.replace("periodSeconds: 10", "periodSecond: 10"))
    deployment = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: llm}
spec:
  selector: {matchLabels: {app: llm}}
  template:
    metadata: {labels: {app: llm}}
    spec:
      containers: [{name: server, image: llm:2, ports: [{containerPort: 8000}]}]
"""
    with pytest.raises(manifests.ManifestError, match="runs a v1 Pod"):
        sr.run_pod(deployment)


def _run(starts: int, ready_s: float | None) -> sr.PodRun:
    containers = [sr.ContainerRun(i + 1, 3.0 * i, 3.0 * i + 2.5) for i in range(starts)]
    return sr.PodRun("p", 0.1, 20.0, containers, [], ready_s, 0, starts - 1, 35.0)


def test_comparison_ratio_counts_starts_to_one_ready_pod():
    result = sr.Comparison(before=_run(5, None), after=_run(1, 4.5))
    assert result.after.starts_until_ready == 1
    assert result.ratio == 5.0
    assert _run(3, 7.0).starts_until_ready == 3
