"""Real ranks on loopback: a job that finishes, one that hangs, one that fails, one that
cannot start; what the launcher reports and that nothing outlives it."""

import pytest

from labsupport import device, portable
from labsupport.distributed import launch

pytestmark = pytest.mark.timeout(120)
RECORDER = {"TORCH_FR_BUFFER_SIZE": "32", "TORCH_NCCL_DUMP_ON_TIMEOUT": "1"}


def test_a_job_that_finishes_returns_each_ranks_value_and_progress():
    run = launch.run_job("labsupport.distributed.examples:sum_of_ranks", window_s=60)
    assert [r.value for r in run.ranks] == [1.0, 1.0]
    assert run.finished and not run.hung and not run.contained
    assert all(r.exit_code == 0 and not r.killed and r.phase == "done" for r in run.ranks)
    assert all(r.progress and r.progress[0][1] == {"step": 0} for r in run.ranks)
    assert run.env["GLOO_SOCKET_IFNAME"] == "lo" and run.traces == {}
    assert "finished" in run.summary()


def test_a_rank_that_goes_quiet_is_found_by_the_dumps_and_the_group_torn_down():
    run = launch.run_job(
        "labsupport.distributed.examples:one_rank_goes_quiet",
        timeout_s=1.5,
        window_s=60,
        env=RECORDER,
        grace_s=2.0,
    )
    waiting, quiet = run.ranks
    assert waiting.exit_code == 1 and "Timed out" in waiting.error and not waiting.ok
    assert quiet.killed and quiet.exit_code is None and not run.hung  # torn down after a failure
    assert waiting.dumped and quiet.dumped  # the quiet rank dumped when asked, from its monitor
    assert [e["collective_seq_id"] for e in waiting.trace] == [1, 2, 3, 4]
    assert [e["collective_seq_id"] for e in quiet.trace] == [1, 2, 3]
    assert not waiting.trace[-1]["retired"], "the dump shows the timed-out collective unfinished"
    assert waiting.ended_s - waiting.trace_s < 3.0


def test_without_a_recorder_a_hung_job_says_nothing_and_is_stopped_when_idle():
    run = launch.run_job(
        "labsupport.distributed.examples:one_rank_goes_quiet", window_s=60, idle_s=2.0
    )
    assert run.hung and all(r.killed and not r.dumped for r in run.ranks)
    last = max(t for r in run.ranks for t, _ in r.progress)
    assert 2.0 <= max(r.ended_s for r in run.ranks) - last < 5.0


def test_a_failed_rank_brings_the_group_down_and_a_bad_interface_fails_at_init():
    failed = launch.run_job("labsupport.distributed.examples:fails_at_once", window_s=60)
    assert "rank 0 gives up" in failed.ranks[0].error and failed.ranks[0].exit_code == 1
    assert not failed.hung and failed.duration_s < 30
    bad = launch.run_job(
        "labsupport.distributed.examples:sum_of_ranks",
        window_s=60,
        env={"GLOO_SOCKET_IFNAME": "srelab-none0"},
    )
    assert [r.exit_code for r in bad.ranks] == [2, 2] and [r.phase for r in bad.ranks] == [
        "init"
    ] * 2
    assert "srelab-none0" in bad.ranks[0].error


def _double_rank(ctx):
    import torch
    import torch.distributed as dist

    x = torch.tensor([2.0 * ctx.rank], device=ctx.device)
    dist.all_reduce(x)
    return float(x.item())


def test_a_notebook_function_runs_contained_in_every_rank():
    run = launch.run_job(portable.portable(_double_rank), window_s=60)
    assert run.contained and [r.value for r in run.ranks] == [2.0, 2.0], run.summary()


@pytest.mark.gpu
def test_with_a_gpu_the_ranks_tensors_live_on_it():
    assert device.cuda_available()
    run = launch.run_job("labsupport.distributed.examples:sum_of_ranks", window_s=90)
    assert [r.device for r in run.ranks] == ["cuda:0", "cuda:0"] or all(
        r.device.startswith("cuda:") for r in run.ranks
    )
    assert [r.value for r in run.ranks] == [1.0, 1.0], run.summary()
