import pytest

from labsupport import hints, wire
from labsupport.scenarios import client_gone_gpu_still_busy as scenario


def test_a_seed_is_one_incident_and_seeds_differ():
    assert scenario.variant(3) == scenario.variant(3)
    shapes = {scenario.variant(s).workload for s in range(10)}
    assert len(shapes) >= 8
    assert {scenario.variant(s).gateway for s in range(4)} == {"close", "read"}


@pytest.mark.parametrize("seed", range(12))
def test_every_variant_wastes_at_least_five_times_what_it_delivers(seed):
    w = scenario.variant(seed).workload
    generated = w.leaving * w.leaving_max_tokens + w.staying * w.staying_max_tokens
    delivered = w.leaving * w.leave_after_tokens + w.staying * w.staying_max_tokens
    assert generated / delivered >= 5.0  # the registry's min_ratio, at any seed


def test_variant_is_data_and_refuses_bad_seeds():
    v = scenario.variant(0)
    assert wire.loads(wire.dumps(v)) == v
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError):
            scenario.variant(bad)


def test_hints_cover_both_exercises():
    table = hints.table(286)
    assert set(table) == {"diagnose", "stream_outputs"}
    assert all(len(h) == 3 for h in table.values())
