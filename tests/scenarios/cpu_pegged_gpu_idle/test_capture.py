import os

import pytest

from labsupport.scenarios import cpu_pegged_gpu_idle as lab
from tests.labs.truth import cpu_pegged_gpu_idle as truth


def test_ptrace_status_says_what_is_allowed():
    text = lab.ptrace_status()
    assert f"uid {os.getuid()}" in text and "->" in text


@pytest.mark.timeout(120)
def test_faulthandler_catches_the_loop_in_the_tokenizer():
    v = lab.variant(1)
    cap = lab.capture_stuck_server(v, tool="faulthandler")
    got = truth.reading(cap.text)
    assert cap.tool == "faulthandler" and cap.silent_s >= 1.0
    assert got["function"] == "_byte_pair_merge"
    assert got["request_step"] == truth.answer_key(1)["request_step"]
    assert got["request_id"] is None
