import pytest

from labsupport.scenarios import device_side_assert as scenario
from labsupport.scenarios.device_side_assert import traffic

FIELD = {"prompt": "prompt", "stop": "stop_token_ids", "allowed": "allowed_token_ids"}


def _outside(values) -> list[int]:
    return [t for t in values if not 0 <= t < traffic.MODEL_VOCAB]


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_the_victim_carries_one_added_token_in_its_layers_field(seed):
    v = scenario.variant(seed)
    body = v.victim.body
    (bad,) = _outside(body[FIELD[v.layer]])
    assert bad in traffic.ADDED.values()
    if v.layer == "stop":
        assert body["min_tokens"] >= 1  # only then does the sampler read the ids by index
    others = [c for c in v.calls("suite") if c.id != v.victim.id]
    for call in others:  # the other out-of-range ids sit where nothing indexes with them
        assert not _outside(call.body["prompt"])
        assert not _outside(call.body.get("allowed_token_ids", []))
        if _outside(call.body.get("stop_token_ids", [])):
            assert call.body.get("min_tokens", 0) == 0
            assert call.id in v.bad_ids("suite")


def test_seeds_vary_the_field_the_victim_and_the_timing():
    variants = [scenario.variant(s) for s in range(3)]
    assert {v.layer for v in variants} == set(traffic.LAYERS)
    assert scenario.variant(0).calls() == scenario.variant(0).calls()  # deterministic
    calls = variants[0].calls("full")
    assert len(calls) == scenario.COUNTS["full"] and calls[0].body["request_id"] == calls[0].id
    assert all(a.at_s < b.at_s for a, b in zip(calls, calls[1:], strict=False))


def test_bad_bodies_cover_every_token_id_field():
    fields = {field for field, _ in traffic.bad_bodies(1000, seed=3)}
    assert fields == {"prompt", "stop_token_ids", "allowed_token_ids", "logit_bias"}
