"""Checks of lab 276, OOM while monitoring shows free memory.

Diagnosis: the learner's numbers are compared with ground truth from workload runs made in the
same check (the real allocator on a GPU, the simulator without one), on several different
snapshots, so a hard-coded number fails. Fix: the learner's environment is applied to a fresh
process that replays the fragmenting workload under the same cap; it must survive, and the
allocator settings read back from that run must show the setting in effect.
"""

import copy

import pytest

from labsupport.memory import workload
from labsupport.memory.config import ALLOC_ENV_NAMES, AllocatorConfig
from labsupport.memory.snapshot import parse_oom_message, summarize

MiB = 2**20
TOLERANCE_MIB = 0.01
EXPANDABLE = {"PYTORCH_ALLOC_CONF": "expandable_segments:True"}
SECOND_TRACE = dict(big_mib=900, pieces=12, piece_mib=70, request_mib=150)


def evidence() -> dict:
    """label -> workload result, from runs made now (fresh processes on a GPU)."""
    return {
        "incident (default allocator)": workload.run_trace(workload.fragmentation_trace()),
        "70 MiB holes under a 1000 MiB cap": workload.run_trace(
            workload.fragmentation_trace(**SECOND_TRACE), cap_bytes=1000 * MiB
        ),
        "random trace, seed 11": workload.run_trace(
            workload.random_trace(11), cap_bytes=1024 * MiB
        ),
        "random trace, seed 5, expandable segments": workload.run_trace(
            workload.random_trace(5), cap_bytes=1024 * MiB, alloc_env=EXPANDABLE
        ),
    }


def as_mib(value, name: str) -> float:
    assert isinstance(value, (int, float)) and not isinstance(value, bool), (
        f"{name} must return a number of MiB (a float), not {type(value).__name__}"
    )
    return float(value)


@pytest.mark.timeout(300)
def test_largest_free_block_matches_the_snapshot(lab):
    """largest_free_block_mib finds the largest contiguous free block, on several snapshots."""
    for label, run in evidence().items():
        truth = summarize(run.snapshot).largest_free_block_bytes / MiB
        got = as_mib(
            lab.largest_free_block_mib(copy.deepcopy(run.snapshot)), "largest_free_block_mib"
        )
        if got > truth + TOLERANCE_MIB:
            pytest.fail(
                f"{label}: {got:.2f} MiB is larger than any free hole in that snapshot. A request "
                "must fit in ONE contiguous run of 'inactive' blocks inside one segment: are you "
                "adding up free blocks that are not neighbours, or counting allocated ones?",
                pytrace=False,
            )
        assert got >= truth - TOLERANCE_MIB, (
            f"{label}: {got:.2f} MiB is smaller than the largest free hole in that snapshot. "
            "Look at every segment, and treat neighbouring 'inactive' blocks as one hole."
        )


@pytest.mark.timeout(300)
def test_reserved_unallocated_matches_the_snapshot_and_the_oom_message(lab):
    """reserved_unallocated_mib agrees with the snapshot and with the OOM message's figure."""
    for label, run in evidence().items():
        truth = summarize(run.snapshot).reserved_unallocated_bytes / MiB
        got = as_mib(
            lab.reserved_unallocated_mib(copy.deepcopy(run.snapshot)), "reserved_unallocated_mib"
        )
        message = parse_oom_message(run.oom_message) if run.outcome == "oom" else None
        said = (
            f" (the OOM message says {message.reserved_unallocated_bytes / MiB:.2f} MiB)"
            if (message)
            else ""
        )
        assert abs(got - truth) <= TOLERANCE_MIB, (
            f"{label}: you returned {got:.2f} MiB of reserved-but-unallocated memory{said}. "
            "Reserved is everything in the segments; unallocated is what no tensor holds."
        )


def learner_env(lab) -> dict:
    env = lab.allocator_env()
    assert isinstance(env, dict) and env, (
        "allocator_env() must return a non-empty dict of environment variables, "
        "e.g. {'NAME': 'key:value'}"
    )
    others = sorted(set(env) - set(ALLOC_ENV_NAMES))
    assert not others, (
        f"{others}: only the caching allocator's settings may change (PYTORCH_ALLOC_CONF or its "
        "old name PYTORCH_CUDA_ALLOC_CONF). Turning the cache off (PYTORCH_NO_CUDA_MEMORY_CACHING)"
        " or lifting the memory cap hides the fragmentation instead of fixing it."
    )
    assert all(isinstance(v, str) for v in env.values()), "environment values must be strings"
    try:
        config = AllocatorConfig.from_env(env)
    except ValueError as exc:
        pytest.fail(f"PyTorch would reject these settings: {exc}", pytrace=False)
    assert config.backend == "native", (
        "keep the native caching allocator: the lab's cap and snapshot work only with it"
    )
    return env


@pytest.mark.timeout(120)
def test_fix_touches_only_the_allocator_settings(lab):
    """allocator_env returns only PYTORCH_ALLOC_CONF / PYTORCH_CUDA_ALLOC_CONF, valid settings."""
    learner_env(lab)


@pytest.mark.timeout(300)
def test_fix_survives_the_workload_in_a_fresh_process(lab):
    """With the learner's env, a fresh process replays both fragmenting traces without OOM."""
    env = learner_env(lab)
    runs = {
        "the incident's trace": workload.run_trace(
            workload.fragmentation_trace(), alloc_env=env, fresh_process=True
        ),
        "a trace with 70 MiB holes": workload.run_trace(
            workload.fragmentation_trace(**SECOND_TRACE),
            cap_bytes=1000 * MiB,
            alloc_env=env,
            fresh_process=True,
        ),
    }
    for label, run in runs.items():
        assert run.allowed_bytes <= run.cap_bytes, "the run must keep its memory cap"
        assert run.ok, (
            f"{label} still runs out of memory with {env}: {run.describe()}. Which setting does "
            "the OOM message itself suggest?"
        )


@pytest.mark.timeout(300)
def test_fix_setting_took_effect(lab):
    """The allocator settings read back from the fresh run show expandable segments in effect."""
    env = learner_env(lab)
    run = workload.run_trace(workload.fragmentation_trace(), alloc_env=env, fresh_process=True)
    settings = run.allocator_settings
    assert settings.get("expandable_segments") is True, (
        f"the run's snapshot reports expandable_segments={settings.get('expandable_segments')} "
        f"(settings string {settings.get('PYTORCH_CUDA_ALLOC_CONF')!r}). Check the spelling and "
        "the variable name your torch reads (torch 2.9.1 ignored expandable_segments under "
        "PYTORCH_ALLOC_CONF, pytorch#183387); max_split_size_mb can dodge this trace, but it "
        "is not the fix the OOM message recommends."
    )
    assert run.expandable_segments and any(
        s.get("is_expandable") for s in run.snapshot["segments"]
    ), f"no segment of the run was expandable: {run.describe()}"
