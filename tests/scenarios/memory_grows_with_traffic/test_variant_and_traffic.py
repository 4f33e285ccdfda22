"""Lab 294's variants and traffic: seeded, in range, and each variant's dimension varies."""

import pytest

from labsupport.scenarios import memory_grows_with_traffic as scenario
from labsupport.scenarios.memory_grows_with_traffic import traffic


def test_a_seed_picks_the_deployment_and_the_varying_dimension():
    kinds = [(scenario.variant(s).dynamic, scenario.variant(s).recompile_limit) for s in range(4)]
    assert kinds == [(None, 8), (False, 8), (None, 8), (False, 32)]
    for seed in range(8):
        v = scenario.variant(seed)
        varies = [v.batch[0] != v.batch[1], v.length[0] != v.length[1]]
        assert sum(varies) == 1, v  # exactly one dimension takes new values
        assert v.batch[0] <= v.batch_median <= v.batch[1]
        assert v.length[0] <= v.length_median <= v.length[1]
    assert scenario.variant(5) == scenario.variant(5)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_a_bad_seed_is_refused(seed):
    with pytest.raises(ValueError):
        scenario.variant(seed)


@pytest.mark.parametrize("seed", range(4))
def test_traffic_stays_in_range_repeats_shapes_and_meets_many(seed):
    v = scenario.variant(seed)
    seen = traffic.shapes(v, v.requests("full"))
    assert seen == traffic.shapes(v, v.requests("full"))  # same variant, same traffic
    assert all(v.batch[0] <= b <= v.batch[1] and v.length[0] <= n <= v.length[1] for b, n in seen)
    assert all(n % v.length_step == 0 for _, n in seen)
    distinct = traffic.distinct(seen)
    assert 8 < len(distinct) < len(seen)  # more shapes than the limit of 8, some come back
    assert distinct[0] == seen[0] and len(set(distinct)) == len(distinct)


def test_token_ids_are_the_requests_own_and_in_the_vocabulary():
    v = scenario.variant(0)
    a = traffic.token_ids(v, 3, (4, 20))
    assert a.shape == (4, 20) and a.dtype.name == "int64"
    assert (a == traffic.token_ids(v, 3, (4, 20))).all()
    assert not (a == traffic.token_ids(v, 4, (4, 20))).all()
    assert 0 <= a.min() and a.max() < v.vocab_size


def test_fewer_requests_at_suite_scale():
    v = scenario.variant(0)
    assert 0 < v.requests("suite") < v.requests("full")
