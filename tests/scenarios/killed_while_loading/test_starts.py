"""Lab 288's server sizes, manifests and measured debug starts."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from labsupport.k8s import manifests
from labsupport.scenarios.killed_while_loading import starts as sb

pytestmark = pytest.mark.timeout(60)


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_the_incident_manifest_is_valid_kubernetes_with_liveness_only():
    obj = manifests.validate(sb.LIVENESS_ONLY)
    container = obj["spec"]["containers"][0]
    assert "startupProbe" not in container and "livenessProbe" in container
    assert container["args"] == ["--port", "$(PORT)", *sb.INCIDENT.args()], (
        "the manifest runs the incident's server size"
    )


def test_budget_is_the_startup_probe_or_else_liveness():
    assert sb.startup_budget_seconds(sb.LIVENESS_ONLY) == 5 + 3 * 10
    fixed = sb.with_startup_probe(
        sb.LIVENESS_ONLY, {"tcpSocket": {"port": "http"}, "periodSeconds": 5, "failureThreshold": 4}
    )
    manifests.validate(fixed)
    assert sb.startup_budget_seconds(fixed) == 20
    assert sb.probe_fields(fixed, "startupProbe")["initialDelaySeconds"] == 0
    bare = sb.LIVENESS_ONLY.split("    readinessProbe:")[0]
    assert sb.startup_budget_seconds(bare) == math.inf
    defaults = sb.probe_fields(
        sb.with_startup_probe(bare, {"exec": {"command": ["true"]}}), "startupProbe"
    )
    assert (defaults["periodSeconds"], defaults["failureThreshold"]) == (10, 3)


def test_server_size_command_leaves_the_port_to_the_supervisor():
    argv = sb.ServerSize(128, 1.5).command()
    assert argv[argv.index("--port") + 1] == "$(PORT)"
    assert argv[-4:] == ["--weights-mb", "128", "--fault", "slow_start=1.5"]


def test_debug_start_gives_timestamped_evidence_and_the_truth():
    start = sb.debug_start(sb.SMALL)
    began = _at(start.started_at)
    stamps = [(_at(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in start.logs]
    assert stamps == sorted(stamps, key=lambda s: s[0]) and stamps[0][0] >= began
    served = next(t for t, text in stamps if text.startswith(sb.LISTENING))
    assert abs((served - began).total_seconds() - start.port_open_s) < 0.25
    # the server's own timers start after the interpreter and torch are up: they miss that part
    assert start.phases["slow_start_s"] == sb.SMALL.compile_s
    assert start.port_open_s > start.phases["total_s"] + 0.2
    assert not any("SIGTERM" in line for line in start.logs), "logs end when it served"
    assert set(start.evidence()) == {"startedAt", "logs"}


def test_debug_start_that_does_not_come_up_in_time_says_so():
    with pytest.raises(RuntimeError, match="was not up in 0.3 s"):
        sb.debug_start(sb.SMALL, timeout_s=0.3)
