"""Probe designs as pod specs, from a manifest; the logic the server runs; the 1-token probe."""

import pytest

from labsupport.grading.target import ExerciseRef
from labsupport.k8s.manifests import ManifestError
from labsupport.k8s.probes import Call, HTTPGet, ProbeTarget, TCPSocket
from labsupport.portable import PortableFunction
from labsupport.scenarios.port_open_but_not_serving import probesets
from labsupport.scenarios.port_open_but_not_serving.probesets import InferenceCheck
from labsupport.serving.launcher import serve_subprocess
from labsupport.serving.shutdown import decode_spec

pytestmark = pytest.mark.timeout(60)
PORT = probesets.CONTAINER_PORT
MINE = probesets.INCIDENT_MANIFEST.replace(
    "tcpSocket: {port: 8000}", "httpGet: {path: /livez, port: http}"
).replace("path: /health, port: 8000}\n      periodSeconds: 5", "path: /readyz, port: http}\n"
          "      periodSeconds: 5")  # fmt: skip


def test_designs():
    assert isinstance(probesets.INCIDENT.liveness.handler, TCPSocket)
    assert isinstance(probesets.CLASSIC.readiness.handler, Call)
    spec = probesets.INCIDENT.pod_spec(("--max-num-seqs", "8"))
    assert "$(PORT)" in spec.command and "--max-num-seqs" in spec.command
    assert spec.startup_probe is probesets.STARTUP and spec.termination_grace_period_seconds == 5
    assert not any(a.endswith("-handler") for a in spec.command)


def test_from_manifest_takes_the_probes_and_the_server_gets_the_logic():
    mine = probesets.from_manifest(MINE)
    assert mine.liveness.handler == HTTPGet("/livez", "http")
    assert mine.readiness.handler == HTTPGet("/readyz", "http")
    assert mine.startup.failure_threshold == 300 and mine.ports[0].name == "http"
    ref = ExerciseRef("def f(previous, current):\n    return True\n", "<cells>", "f")
    spec = mine.with_handlers(livez=ref, readyz="tests.x:y").pod_spec()
    args = list(spec.command)
    assert decode_spec(args[args.index("--livez-handler") + 1]) == ref
    assert args[args.index("--readyz-handler") + 1] == "tests.x:y"


def test_a_manifest_without_probes_or_not_kubernetes_is_refused():
    no_readiness = MINE.split("    readinessProbe:")[0]
    with pytest.raises(ManifestError, match="readinessProbe"):
        probesets.from_manifest(no_readiness)
    with pytest.raises(ManifestError, match="periodSecond"):
        probesets.from_manifest(MINE.replace("periodSeconds: 10", "periodSecond: 10"))


def notebook_function(previous, current):
    return True


def test_as_handler():
    assert probesets.as_handler(notebook_function) == (
        "tests.scenarios.port_open_but_not_serving.test_probesets:notebook_function"
    )
    ref = ExerciseRef("x = 1", "<cells>", "x")
    assert probesets.as_handler(ref) is ref
    notebook_function.__module__ = "__main__"  # as if defined in a notebook (no kernel here)
    try:
        assert isinstance(probesets.as_handler(notebook_function), PortableFunction)
    finally:
        notebook_function.__module__ = __name__


def test_inference_check_against_the_real_server_and_a_dead_port():
    with serve_subprocess() as srv:
        ok, message = InferenceCheck()(ProbeTarget(ports={PORT: srv.port}))
    assert ok and "HTTP 200" in message
    ok, message = InferenceCheck()(ProbeTarget(ports={PORT: srv.port}))
    assert not ok
