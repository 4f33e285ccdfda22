"""Lab 297's reference analysis agrees with how the written dumps were built."""

import pytest

from tests.labs.truth import collective_timeout as truth


@pytest.mark.parametrize("seed", range(6))
def test_written_cases_have_the_answer_they_were_built_for(seed):
    found = {label: truth.first_unfinished(t) for label, t in truth.cases(seed).items()}
    for label, answer in found.items():
        if "all entered" in label:
            assert answer["rank"] is None, label
        elif "rank 1 never" in label or "rank 1 left" in label:
            assert answer["rank"] == 1, label
        elif "rank 2 never" in label:
            assert answer["rank"] == 2, label
        elif "rank 0 left" in label:
            assert answer["rank"] == 0, label
        else:
            assert answer["rank"] is not None, label
        near = truth.near_misses(truth.cases(seed)[label])
        assert near and answer not in near.values(), label


def test_the_settings_bounds_reject_each_classic_mistake():
    good = {
        "timeout_s": 3.0,
        "env": {"TORCH_FR_BUFFER_SIZE": "2000", "TORCH_NCCL_DUMP_ON_TIMEOUT": "1"},
    }
    assert truth.settings_problems(good, 1.0) == []

    def problems(**change):
        return " ".join(truth.settings_problems({**good, **change}, 1.0))

    assert "would time out" in problems(timeout_s=1.2)
    assert "sits that long" in problems(timeout_s=600)
    assert "flight recorder is off" in problems(env={"TORCH_NCCL_DUMP_ON_TIMEOUT": "1"})
    assert "nothing dumps" in problems(env={"TORCH_FR_BUFFER_SIZE": "64"})
    assert "interface" in problems(env={**good["env"], "NCCL_SOCKET_IFNAME": "eth0"})
    assert "DETAIL" in problems(env={**good["env"], "TORCH_DISTRIBUTED_DEBUG": "DETAIL"})
    assert "only TORCH_" in problems(env={**good["env"], "LD_PRELOAD": "x.so"})
    assert truth.settings_problems([], 1.0) and truth.settings_problems({"timeout_s": "3"}, 1.0)


def test_answers_are_normalised():
    assert truth.answer_of({"rank": 1, "op": "gloo:all_reduce", "seq": 3}) == {
        "rank": 1,
        "op": "all_reduce",
        "seq": 3,
    }
    for bad in (
        None,
        {"rank": 1},
        {"rank": "1", "op": "x", "seq": 1},
        {"rank": 0, "op": "x", "seq": True},
    ):
        assert truth.answer_of(bad) is None
