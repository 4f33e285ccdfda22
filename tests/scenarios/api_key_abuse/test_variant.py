import pytest

from labsupport.scenarios import api_key_abuse as scenario
from labsupport.scenarios.api_key_abuse import runs


def test_a_seed_picks_the_customers_the_heavy_key_and_how_it_hurts():
    seen = set()
    for seed in range(6):
        v = scenario.variant(seed)
        assert v == scenario.variant(seed)
        assert len(v.keys) == 6 and v.heavy in v.keys and v.chatty in v.keys
        assert v.heavy != v.chatty and v.how == scenario.HOWS[seed % 2]
        assert all(limits == v.plan for limits in v.keys.values())
        assert {t.key for t in v.customers} == set(v.keys) - {v.heavy}
        chatty = next(t for t in v.customers if t.key == v.chatty)
        assert chatty.sessions == max(t.sessions for t in v.customers)
        ht = v.heavy_traffic
        assert ht.key == v.heavy and ht.requests == 1 and ht.start_s == v.heavy_starts_s
        if v.how == "max_tokens":  # a few answers that nearly fill the context
            assert ht.sessions <= 6
            assert ht.max_tokens + len(ht.prompt.encode()) <= scenario.MAX_MODEL_LEN
            assert ht.max_tokens > 8 * max(t.max_tokens for t in v.customers)
        else:  # many at once, each of a modest size
            assert ht.sessions >= 18 and ht.max_tokens <= 120
        # within the plan: what the deployed limits count never refuses it
        assert ht.sessions * ht.requests < v.plan.rpm
        seen.add((v.heavy, v.how))
    assert len(seen) == 6


def test_a_round_of_traffic_ends_when_asked():
    v = scenario.variant(1)
    quiet = v.traffics(heavy=False, round_s=2.5)
    busy = v.traffics(heavy=True, round_s=5.0)
    assert len(busy) == len(quiet) + 1 and busy[-1].key == v.heavy
    assert {t.stop_s for t in quiet} == {2.5} and {t.stop_s for t in busy} == {5.0}
    assert v.heavy not in v.describe() and v.chatty in v.describe()


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_a_bad_seed_is_refused(seed):
    with pytest.raises(ValueError):
        scenario.variant(seed)


def test_rounds_are_shorter_at_suite_scale():
    assert runs.ROUNDS_S["suite"]["busy"] < runs.ROUNDS_S["full"]["busy"]
