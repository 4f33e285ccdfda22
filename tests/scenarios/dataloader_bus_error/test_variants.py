"""What a seed changes, and that every variant is a consistent incident."""

import pytest

from labsupport.scenarios import dataloader_bus_error as scenario
from tests.labs.truth import dataloader_bus_error as truth


@pytest.mark.parametrize("seed", range(6))
def test_each_variant_fails_as_designed_and_can_be_fixed_both_ways(seed):
    v = scenario.variant(seed)
    ldr = v.loader.as_dict()
    need = truth.needed_bytes(ldr)
    low_need = truth.accepted_range(ldr)[0]
    free = v.room_bytes - sum(v.found_bytes)
    assert low_need > free, "the incident must overflow even with the +1 reading"
    both = {need > v.room_bytes, low_need > v.room_bytes}
    assert len(both) == 1, "both readings of the need must give the same cause"
    settings_fit = any(
        truth.needed_bytes({**ldr, "num_workers": v.min_workers, "prefetch_factor": p}) <= free
        for p in (1, 2)
    )
    assert settings_fit, "a settings fix must exist with the minimum workers"
    assert v.min_workers <= v.loader.num_workers
    assert v.memory_limit_bytes > v.job_memory_bytes


def test_the_first_seeds_differ_in_cause_and_sizes():
    keys = [truth.answer_key(s) for s in range(3)]
    assert [k["cause"] for k in keys] == ["loader", "occupied", "loader"]
    assert len({repr(k) for k in keys}) == 3


def test_a_bad_seed_is_refused():
    with pytest.raises(ValueError):
        scenario.variant(-1)
