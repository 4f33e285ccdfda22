"""Supervised pods against faults and loads: restarts, readiness, the gateway, verdicts."""

import pytest

from labsupport.scenarios import port_open_but_not_serving as scenario
from labsupport.scenarios.port_open_but_not_serving import probesets, runs
from labsupport.scenarios.port_open_but_not_serving.runs import PodRun, _finish, phase_traffic
from tests.scenarios.port_open_but_not_serving.test_probesets import MINE

pytestmark = pytest.mark.timeout(150)
V = scenario.variant(0)


def heartbeat(previous, current):
    """The heartbeat the server runs behind /livez and /readyz (trusted code here)."""
    if previous is None:
        return True
    steps = "vllm:iteration_tokens_total_count"
    pending = [
        s.value("vllm:num_requests_running") + s.value("vllm:num_requests_waiting")
        for s in (previous, current)
    ]
    return not (min(pending) > 0 and current.value(steps) == previous.value(steps))


def test_incident_probes_never_restart_a_stalled_engine_and_the_evidence_says_why():
    run = runs.run_fault(
        "wedged_engine", probesets.INCIDENT, V, window_s=4, shadows=runs.classic_shadows(),
        evidence=True,
    )  # fmt: skip
    assert run.restarts == 0 and not run.kills
    assert not run.verdicts["wedged_engine"].handled
    assert "still Ready" in run.verdicts["wedged_engine"].what
    t0, t1 = run.phases["fault"]
    assert run.served(t0 + 0.5, t1)["served"] == 0  # every request after the fault hangs
    classic = run.shadow_verdicts[probesets.CLASSIC.name]["wedged_engine"]
    assert not classic.handled  # /health liveness: 200 all along
    assert run.evidence.health.count(200) == run.evidence.ticks
    assert "Liveness" in run.describe and run.device in ("cpu", "cuda")


def test_a_heartbeat_served_by_the_server_restarts_a_stalled_engine():
    probes = probesets.from_manifest(MINE).with_handlers(
        livez="tests.scenarios.port_open_but_not_serving.test_runs:heartbeat",
        readyz="tests.scenarios.port_open_but_not_serving.test_runs:heartbeat",
    )
    run = runs.run_fault("wedged_engine", probes, V, window_s=12)
    verdict = run.verdicts["wedged_engine"]
    assert verdict.handled and 1.0 < verdict.detected_s < 12
    assert run.restarts == 1 and run.kills[0][1] == "liveness"
    assert any(not ready for t, ready in run.ready if run.phases["fault"][0] < t)


def test_unknown_fault():
    with pytest.raises(ValueError):
        runs.run_fault("nope", probesets.INCIDENT, V)


def test_phase_traffic_and_shadow_views_from_results():
    requests = [(1.0, 0.5, "ok", "a"), (1.5, 0.0, "http_429", "a"), (2.0, 0.7, "ok", "b"),
                (2.5, 9.0, "cancelled", "b"), (9.0, 0.1, "ok", "a")]  # fmt: skip
    assert phase_traffic(requests, 1.0, 3.0) == {"shed": 1, "served": 2, "p50_s": 0.7}
    run = PodRun("pod", ("healthy", "gil_busy_loop"))
    run.phases = {"healthy": (1.0, 3.0), "fault": (3.0, 8.0)}
    run.ready = [(0.0, False), (0.5, True)]
    run.shadow_results = {
        ("classic", "liveness"): [(4.0, False, True), (5.0, False, True), (6.0, False, False)],
        ("classic", "readiness"): [(0.6, True, True), (4.5, False, False)],
    }
    _finish(run)
    assert run.views["classic"].kills == [6.0]
    assert run.views["classic"].ready == [(0.6, True), (4.5, False)]
    assert run.shadow_verdicts["classic"]["gil_busy_loop"].detected_s == pytest.approx(3.0)
    assert not run.verdicts["gil_busy_loop"].handled and run.verdicts["healthy"].handled
