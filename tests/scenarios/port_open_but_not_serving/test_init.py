"""What a seed changes: the variant of the incident, its bounds, and nothing that gives it away."""

import pytest

from labsupport.scenarios import port_open_but_not_serving as scenario


def test_seeds_zero_to_two_break_three_different_parts():
    causes = [scenario.variant(s).cause for s in (0, 1, 2)]
    assert sorted(causes) == ["engine", "event_loop", "gil"]
    assert scenario.variant(0).cause == "engine"  # the classic incident in the solution
    assert scenario.variant(5) == scenario.variant(5)  # deterministic


@pytest.mark.parametrize("seed", range(8))
def test_every_variant_can_be_solved(seed):
    v = scenario.variant(seed)
    assert v.peak > v.capacity and v.overload > 3 * v.capacity  # a batch waits; a storm
    assert v.peak <= 3 * v.capacity  # the gateway limit has room: [peak, 3 x capacity]
    assert 3 * 10 > v.stall_s or v.restart_within_s >= 45  # a 10 s period fits
    assert any(
        p * f > v.stall_s and p * (f + 1) + 1 <= v.restart_within_s
        for p in (5, 10, 15)
        for f in range(1, 10)
    )
    assert v.incident_fault == scenario.FAULT_OF[v.cause]
    assert v.fault_value("wedged_engine") is None and v.fault_value("gil_busy_loop") > 0


def test_what_is_printed_does_not_say_what_broke():
    for seed in range(3):
        v = scenario.variant(seed)
        text = v.describe() + repr(v)
        assert "cause" not in text and scenario.CAUSES[v.cause] not in text
        assert v.incident_fault not in text
        assert str(v.capacity) in text and str(v.stall_s) in text


def test_bad_seeds():
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError):
            scenario.variant(bad)
