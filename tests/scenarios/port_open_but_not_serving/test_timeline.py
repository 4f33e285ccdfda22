"""Views of a pod's story and the rule of each scenario."""

import pytest

from labsupport.scenarios.port_open_but_not_serving.timeline import SCENARIOS, View, judge

PHASES = {
    "healthy": (1.0, 5.0),
    "heavy_load": (5.0, 10.0),
    "overload": (10.0, 15.0),
    "drain": (15.0, 18.0),
    "fault": (3.0, 11.0),
}


def test_ready_at_and_unready_spans():
    v = View([(0.0, False), (1.0, True), (4.0, False), (6.0, True)])
    assert not v.ready_at(0.5) and v.ready_at(1.0) and not v.ready_at(5.0) and v.ready_at(9.0)
    assert v.unready_spans(0.0, 10.0) == [(0.0, 1.0), (4.0, 6.0)]
    assert v.unready_spans(5.0, 8.0) == [(5.0, 6.0)]
    assert v.unready_s(2.0, 3.0) == 0.0


def test_healthy_and_heavy_need_ready_and_no_kill():
    steady = View([(0.0, False), (0.5, True)])
    assert judge("healthy", steady, PHASES).handled
    assert judge("heavy_load", steady, PHASES).handled
    flap = View([(0.0, False), (0.5, True), (7.0, False), (8.0, True)])
    assert judge("healthy", flap, PHASES).handled
    v = judge("heavy_load", flap, PHASES)
    assert not v.handled and "1.0 s" in v.what
    killed = View([(0.0, False), (0.5, True)], kills=[2.0])
    assert not judge("healthy", killed, PHASES).handled


def test_overload_must_shed_without_restart_and_come_back():
    good = View([(0.0, False), (0.5, True), (11.5, False), (15.5, True)])
    v = judge("overload", good, PHASES)
    assert v.handled and v.detected_s == pytest.approx(1.5)
    assert not judge("overload", View([(0.0, False), (0.5, True)]), PHASES).handled
    stuck = View([(0.0, False), (0.5, True), (11.5, False)])
    assert "not Ready again" in judge("overload", stuck, PHASES).what
    restarted = View(good.ready, kills=[12.0])
    assert "restarted" in judge("overload", restarted, PHASES).what


def test_faults_need_a_liveness_kill_inside_the_window_and_none_before():
    ready = [(0.0, False), (0.5, True)]
    assert judge("wedged_engine", View(ready, [6.5]), PHASES).detected_s == pytest.approx(3.5)
    missed = judge("gil_busy_loop", View(ready, []), PHASES)
    assert not missed.handled and "still Ready" in missed.what
    out = judge("gil_busy_loop", View([*ready, (5.0, False)], []), PHASES)
    assert "out of the Service" in out.what
    early = judge("blocked_event_loop", View(ready, [2.0, 6.0]), PHASES)
    assert not early.handled and "before the fault" in early.what
    assert not judge("wedged_engine", View(ready, [12.0]), PHASES).handled  # after the window


def test_every_scenario_has_a_rule():
    for s in SCENARIOS:
        judge(s, View([(0.0, True)]), PHASES)
    with pytest.raises(ValueError):
        judge("nope", View(), PHASES)
