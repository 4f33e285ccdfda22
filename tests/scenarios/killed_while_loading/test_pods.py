"""Lab 288's pods under the supervisor: the restart loop, a startup probe, a later hang."""

from __future__ import annotations

import pytest
import yaml

from labsupport.k8s import manifests
from labsupport.scenarios.killed_while_loading import pods, starts

pytestmark = pytest.mark.timeout(90)

SMALL = starts.ServerSize(64, 1.0)
STARTUP = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5}


def with_startup_probe(manifest: str, probe: dict, **liveness) -> str:
    """`manifest` with `probe` as its startupProbe and liveness fields changed."""
    obj = yaml.safe_load(manifest)
    container = obj["spec"]["containers"][0]
    container["startupProbe"] = probe
    container["livenessProbe"].update(liveness)
    return yaml.safe_dump(obj, sort_keys=False)


def test_liveness_only_kills_every_start_while_loading():
    run = pods.run_pod(starts.incident_manifest(), starts.INCIDENT, window_s=8)
    assert run.ready_s is None and run.starts >= 2
    assert run.killed_while_loading >= 2
    done = run.containers[:-1]  # the last one was stopped by the end of the run
    assert {c.killed_by for c in done} == {"liveness"}
    assert {c.exit_code for c in done} == {143}, "SIGTERM during the load"
    assert all(not c.phases for c in done), "killed before its startup line"
    assert run.restart_count == run.starts - 1
    assert "Liveness probe failed" in run.describe and "connection refused" in run.describe
    assert "Startup" not in run.describe, "nothing in the incident's evidence names it"
    kill = run.event_times("Killing", "liveness")[0]
    assert 2.4 <= kill <= 3.5, "the third failure: 5 + 2 x 10 manifest seconds after the start"
    assert run.event_times("BackOff"), "the second restart waits"


def test_startup_probe_gets_ready_once_and_liveness_catches_the_later_hang():
    fixed = with_startup_probe(
        starts.incident_manifest(SMALL), {**STARTUP, "failureThreshold": 30}, initialDelaySeconds=0
    )
    run = pods.run_pod(fixed, SMALL, window_s=30, hang_after_ready_s=10)
    assert run.ready_s is not None and run.restarts_before_ready == 0
    assert run.starts_until_ready == 1 and run.killed_while_loading == 0
    first = run.containers[0]
    assert first.port_open_s is not None and first.port_open_s <= run.ready_s
    assert run.ready_s - first.port_open_s < 0.9, "readiness follows the startup success"
    assert first.phases["slow_start_s"] == SMALL.compile_s
    assert not [t for t in run.probe_failures("Liveness") if t < run.ready_s], "gated"
    assert run.probe_failures("Startup"), "the startup probe saw the closed port"
    assert run.hang_s is not None and run.hang_s - run.ready_s >= 0.9, "10 cluster s later"
    assert run.hang_detected_seconds is not None and run.hang_detected_seconds <= 60
    assert first.killed_by == "liveness"


def test_a_long_liveness_delay_misses_a_hang_soon_after_ready():
    """The grader's teeth: a giant startup budget plus a giant liveness delay fails."""
    fixed = with_startup_probe(
        starts.incident_manifest(SMALL),
        {**STARTUP, "failureThreshold": 1000},
        initialDelaySeconds=600,
    )
    run = pods.run_pod(fixed, SMALL, window_s=30, hang_after_ready_s=0, hang_timeout_s=6)
    assert run.ready_s is not None and run.hang_s is not None
    assert run.hang_detected_seconds is None


def test_run_pod_refuses_what_it_cannot_run():
    broken = starts.incident_manifest().replace("periodSeconds: 10", "periodSecond: 10")
    with pytest.raises(manifests.ManifestError, match="periodSecond"):
        pods.run_pod(broken)
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
        pods.run_pod(deployment)


def _run(n: int, ready_s: float | None) -> pods.PodRun:
    containers = [pods.ContainerRun(i + 1, 3.0 * i, 3.0 * i + 2.5) for i in range(n)]
    return pods.PodRun("p", 0.1, 20.0, containers, [], ready_s, 0, n - 1)


def test_comparison_ratio_counts_starts_to_one_ready_pod():
    result = pods.Comparison(before=_run(5, None), after=_run(1, 4.5))
    assert result.after.starts_until_ready == 1
    assert result.ratio == 5.0
    assert _run(3, 7.0).starts_until_ready == 3
