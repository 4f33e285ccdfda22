"""Manifest validation against the real Kubernetes schema, API rules, and translation."""

from __future__ import annotations

import copy
import sys

import pytest
import yaml

from labsupport.k8s import HTTPGet, Recreate, RollingUpdate, Sleep, TCPSocket
from labsupport.k8s import manifests as m

pytestmark = pytest.mark.timeout(60)

GOOD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: llm}
spec:
  replicas: 2
  selector: {matchLabels: {app: llm}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 0, maxUnavailable: "50%"}}
  template:
    metadata: {labels: {app: llm}}
    spec:
      terminationGracePeriodSeconds: 60
      containers:
      - name: server
        image: llm:2
        command: [python, -m, labsupport.k8s.demo_server]
        args: [--port, $(PORT), --on-sigterm, drain]
        env: [{name: VERSION, value: "2"}]
        ports: [{name: http, containerPort: 8000}]
        resources: {limits: {nvidia.com/gpu: 1}}
        lifecycle: {preStop: {sleep: {seconds: 10}}}
        startupProbe: {tcpSocket: {port: 8000}, periodSeconds: 2, failureThreshold: 60}
        livenessProbe: {httpGet: {path: /health, port: http}, timeoutSeconds: 2}
        readinessProbe: {httpGet: {path: /ready, port: 8000}, periodSeconds: 1}
"""


def _container(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]["containers"][0]


def _errors(doc) -> list[str]:
    with pytest.raises(m.ManifestError) as info:
        m.validate(doc)
    return info.value.errors


def test_good_manifest_translates_faithfully():
    spec = m.pod_spec(GOOD)
    assert spec.command == (
        sys.executable,
        "-m",
        "labsupport.k8s.demo_server",
        "--port",
        "$(PORT)",
        "--on-sigterm",
        "drain",
    )
    assert spec.name == "server" and spec.env == (("VERSION", "2"),) and spec.gpus == 1
    assert spec.ports[0].container_port == 8000 and spec.ports[0].name == "http"
    assert spec.termination_grace_period_seconds == 60 and spec.pre_stop == Sleep(10)
    assert spec.startup_probe.handler == TCPSocket(8000)
    assert (spec.startup_probe.period_seconds, spec.startup_probe.failure_threshold) == (2, 60)
    live = spec.liveness_probe
    assert live.handler == HTTPGet("/health", "http") and live.timeout_seconds == 2
    assert (live.period_seconds, live.failure_threshold, live.success_threshold) == (10, 3, 1)
    kwargs = m.deployment_kwargs(GOOD)
    assert kwargs["replicas"] == 2 and kwargs["strategy"] == RollingUpdate(0, "50%")


def test_unknown_field_is_named_with_a_suggestion():
    doc = yaml.safe_load(GOOD)
    _container(doc)["livenessProbe"]["periodSecond"] = 5
    assert _errors(doc) == [
        "spec.template.spec.containers[0].livenessProbe.periodSecond: "
        'unknown field (did you mean "periodSeconds"?)'
    ]


def test_every_error_is_reported_at_once():
    doc = yaml.safe_load(GOOD)
    _container(doc)["readinessProbe"]["periodSeconds"] = "ten"
    _container(doc)["lifecycle"]["preStop"]["sleep"] = {"second": 5}
    del _container(doc)["name"]
    errors = _errors(doc)
    base = "spec.template.spec.containers[0]"
    assert f"{base}.readinessProbe.periodSeconds: expected integer, got 'ten'" in errors
    assert f"{base}.name: required field is missing" in errors
    assert any(e.startswith(f"{base}.lifecycle.preStop.sleep") for e in errors)
    assert len(errors) >= 3


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda c, d: c["livenessProbe"].pop("httpGet"), "must specify a handler type"),
        (
            lambda c, d: c["livenessProbe"].update(tcpSocket={"port": 8000}),
            "may not specify more than 1 handler type",
        ),
        (
            lambda c, d: c["livenessProbe"].update(successThreshold=2),
            "must be 1 for liveness and startup probes",
        ),
        (
            lambda c, d: c["lifecycle"]["preStop"]["sleep"].update(seconds=90),
            "must be between 0 and terminationGracePeriodSeconds (60)",
        ),
        (
            lambda c, d: d["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=0),
            "may not be 0 when maxSurge is 0",
        ),
        (
            lambda c, d: d["spec"]["strategy"]["rollingUpdate"].update(maxSurge="25"),
            'must be a percentage such as "25%"',
        ),
        (
            lambda c, d: d["spec"]["selector"]["matchLabels"].update(app="other"),
            "does not match template labels",
        ),
        (
            lambda c, d: c["readinessProbe"]["httpGet"].update(port=9000),
            "9000 is not a declared containerPort",
        ),
        (
            lambda c, d: c["livenessProbe"]["httpGet"].update(port="metrics"),
            "no container port is named 'metrics'",
        ),
        (lambda c, d: c.pop("command"), "command: required here"),
        (lambda c, d: c.pop("image"), "image: required field is missing"),
        (
            lambda c, d: c["livenessProbe"].update(httpGet=None, grpc={"port": 8000}),
            "grpc: not supported",
        ),
        (
            lambda c, d: d["spec"]["template"]["spec"]["containers"].append(copy.deepcopy(c)),
            "exactly one container per pod, found 2",
        ),
        (
            lambda c, d: c["readinessProbe"].update(terminationGracePeriodSeconds=5),
            "must not be set for readinessProbes",
        ),
        (
            lambda c, d: c["lifecycle"]["preStop"].update(sleep=None, tcpSocket={"port": 8000}),
            "deprecated and never run",
        ),
    ],
)
def test_api_server_rules_and_lab_limits(mutate, expected):
    doc = yaml.safe_load(GOOD)
    mutate(_container(doc), doc)
    errors = _errors(doc)
    assert any(expected in e for e in errors), errors


def test_not_a_manifest_or_not_supported():
    assert "not valid YAML" in _errors("kind: [unclosed")[0]
    assert "kind: required field is missing" in _errors("apiVersion: v1\n")[0]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}]},
    }
    assert "runs only v1 Pod and apps/v1 Deployment" in _errors(service)[0]
    assert "exactly one YAML mapping" in _errors(GOOD + "\n---\n" + GOOD)[0]


def test_recreate_and_pod_manifests():
    doc = yaml.safe_load(GOOD)
    doc["spec"]["strategy"] = {"type": "Recreate"}
    assert m.deployment_kwargs(doc)["strategy"] == Recreate()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i", "command": ["true"]}]},
    }
    assert m.pod_from_manifest(pod).name == "p"
    overridden = m.pod_spec(
        {**pod, "spec": {"containers": [{"name": "c", "image": "i"}]}}, command=("true",)
    )
    assert overridden.command == ("true",), "the lab may supply the workload's command"


def test_manifest_runs_under_the_supervisor():
    with m.deployment_from_manifest(GOOD, time_scale=0.05) as dep:
        assert dep.wait_ready(30)
        assert len(dep.endpoints) == 2 and all(p.spec.gpus == 1 for p in dep.pods)
        assert "RollingUpdateStrategy:  50% max unavailable, 0 max surge" in dep.describe()
