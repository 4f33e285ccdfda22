"""Real reruns and liveness trials, in fresh processes (a few seconds each)."""

import random

import pytest

from labsupport.scenarios.device_side_assert import liveness, rerun, traffic


def test_only_cuda_and_torch_variables_reach_the_rerun():
    env = {"CUDA_LAUNCH_BLOCKING": "1", "PYTHONPATH": "/x", "CUDA_INJECTION64_PATH": "/a.so"}
    kept, refused = rerun.accepted_env({**env, "TORCH_X": 3})
    assert kept == {"CUDA_LAUNCH_BLOCKING": "1"} and len(refused) == 3


@pytest.mark.timeout(120)
def test_a_blocking_rerun_names_the_failing_line_and_the_process_stays_dead():
    body = traffic.bad_body("allowed", 516, random.Random(0))
    r = rerun.rerun([body], {"CUDA_LAUNCH_BLOCKING": "1"})
    assert r.error.startswith(("AcceleratorError", "RuntimeError"))
    assert "mask[list(p.allowed_token_ids)] = 0.0" in r.traceback
    assert r.after_ok is False and "device-side assert triggered" in r.after_error
    assert "index out of bounds" in r.stderr
    assert "CUDA_LAUNCH_BLOCKING" in r.report()


def _alive(device):
    import torch

    try:
        return float(torch.ones(2, device=device).sum().item()) == 2.0
    except RuntimeError:
        return False


@pytest.mark.timeout(120)
def test_liveness_trials_go_from_healthy_to_dead():
    trials = liveness.ask(_alive)
    assert [(t.state, t.verdict) for t in trials] == [
        ("healthy", True),
        ("host_error", True),
        ("pending", False),
        ("reported", False),
    ]
