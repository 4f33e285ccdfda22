"""Views of a pod's story and the rule of each scenario."""

import pytest

from labsupport.scenarios.port_open_but_not_serving.timeline import SCENARIOS, View, judge

PHASES = {
    "healthy": (1.0, 5.0),
    "heavy_load": (5.0, 10.0),
    "overload": (10.0, 15.0),
    "drain": (15.0, 16.0),
    "fault": (3.0, 11.0),
}
READY = [(0.0, False), (0.5, True)]


def _storm(shed=40, queue=80, bound=96):
    return {"overload": {"shed": shed, "in_flight_max": queue, "queue_bound": bound}}


def test_ready_at_and_unready_spans():
    v = View([(0.0, False), (1.0, True), (4.0, False), (6.0, True)])
    assert not v.ready_at(0.5) and v.ready_at(1.0) and not v.ready_at(5.0) and v.ready_at(9.0)
    assert v.unready_spans(0.0, 10.0) == [(0.0, 1.0), (4.0, 6.0)]
    assert v.unready_spans(5.0, 8.0) == [(5.0, 6.0)]
    assert v.unready_s(2.0, 3.0) == 0.0


def test_healthy_and_peak_need_ready_no_kill_and_nothing_shed():
    steady = View(READY)
    assert judge("healthy", steady, PHASES).handled
    assert judge("heavy_load", steady, PHASES).handled
    flap = View([*READY, (7.0, False), (8.0, True)])
    assert judge("healthy", flap, PHASES).handled
    v = judge("heavy_load", flap, PHASES)
    assert not v.handled and "1.0 s" in v.what
    assert not judge("healthy", View(READY, kills=[2.0]), PHASES).handled
    shed = judge("heavy_load", steady, PHASES, {"heavy_load": {"shed": 3}})
    assert not shed.handled and "shed 3" in shed.what


def test_a_storm_is_shed_at_the_gateway_while_the_pod_stays_ready():
    steady = View(READY)
    v = judge("overload", steady, PHASES, _storm())
    assert v.handled and "80 in flight" in v.what
    assert "nothing shed" in judge("overload", steady, PHASES, _storm(shed=0, queue=224)).what
    assert not judge("overload", steady, PHASES, _storm(queue=150)).handled  # limit too high
    out = View([*READY, (11.5, False), (15.5, True)])  # readiness shedding: the cascade
    assert "taken out of the Service" in judge("overload", out, PHASES, _storm()).what
    killed = judge("overload", View(READY, kills=[12.0]), PHASES, _storm())
    assert not killed.handled and "restarted" in killed.what
    assert not judge("overload", steady, PHASES).handled  # nothing measured: not handled


def test_faults_need_a_liveness_kill_inside_the_window_and_none_before():
    assert judge("wedged_engine", View(READY, [6.5]), PHASES).detected_s == pytest.approx(3.5)
    missed = judge("gil_busy_loop", View(READY, []), PHASES)
    assert not missed.handled and "still Ready" in missed.what
    out = judge("gil_busy_loop", View([*READY, (5.0, False)], []), PHASES)
    assert "out of the Service" in out.what
    early = judge("blocked_event_loop", View(READY, [2.0, 6.0]), PHASES)
    assert not early.handled and "before the fault" in early.what
    assert not judge("wedged_engine", View(READY, [12.0]), PHASES).handled  # after the window


def test_every_scenario_has_a_rule():
    for s in SCENARIOS:
        judge(s, View([(0.0, True)]), PHASES, _storm())
    with pytest.raises(ValueError):
        judge("nope", View(), PHASES)
