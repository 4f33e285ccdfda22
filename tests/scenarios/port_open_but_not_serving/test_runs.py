"""Supervised pods against faults and loads: restarts, readiness, shadows, verdicts."""

import pytest

from labsupport.scenarios.port_open_but_not_serving import probesets, runs
from labsupport.scenarios.port_open_but_not_serving.runs import PodRun, _finish

pytestmark = pytest.mark.timeout(120)


def _alive_and_progressing(previous, current):
    if not current.ok:
        return False
    if previous is None or not previous.ok:
        return True
    pending = current.value("vllm:num_requests_running") + current.value(
        "vllm:num_requests_waiting"
    )
    steps = current.value("srelab:engine_steps_total") - previous.value("srelab:engine_steps_total")
    return not (pending > 0 and steps == 0)


def test_incident_probes_never_restart_a_wedged_engine():
    run = runs.run_fault(
        "wedged_engine", probesets.INCIDENT, window_s=4, shadows=runs.classic_shadows()
    )
    assert run.restarts == 0 and not run.kills
    assert not run.verdicts["wedged_engine"].handled
    assert "still Ready" in run.verdicts["wedged_engine"].what
    assert run.loads["fault"].get("ok", 0) == 0  # every request after the fault hangs
    classic = run.shadow_verdicts[probesets.CLASSIC.name]["wedged_engine"]
    assert not classic.handled  # /health liveness: 200 all along
    assert "Liveness" in run.describe and run.device in ("cpu", "cuda")


def test_a_heartbeat_liveness_restarts_a_wedged_engine_and_it_recovers():
    probes = probesets.from_functions(_alive_and_progressing)
    run = runs.run_fault("wedged_engine", probes, window_s=12)
    verdict = run.verdicts["wedged_engine"]
    assert verdict.handled and 1.0 < verdict.detected_s < 12
    assert run.restarts == 1 and run.kills[0][1] == "liveness"
    assert run.ready[-1][1] or run.ready[-2][1]  # Ready again before the pod was closed


def test_unknown_fault():
    with pytest.raises(ValueError):
        runs.run_fault("nope", probesets.INCIDENT)


def test_shadow_views_from_results():
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
