"""Checks of lab 293 (cold start takes minutes): where the start goes, and a faster loader.

Diagnosis: the learner's `where_the_time_goes` is compared with the reference rule
(`tests/labs/truth/slow_cold_start.py`) on a hand-made profile, on written profiles built so
that the usual wrong readings give other answers (the file's size or rchar for the bytes read,
the cold time for the storage's share, CPU for wall time, fp32 for what the server runs), and
on production's start of this variant's checkpoint measured cold and warm in this run. Fix:
the learner's `load_weights` runs contained, taking turns with production's load, every load
cold (page cache dropped per file); it must return the served tensors (names, bf16, on the
device, equal by sha256 to the checkpoint's), read them from storage itself, and be at least
`MIN_SPEEDUP` times faster cold than production's, measured in that same process; the trusted
side cross-checks the loads' times against the process's own lifetime.
Every checkpoint and measurement is made once per session and seed or submission (`_CACHE`).
"""

from __future__ import annotations

import hashlib

import pytest

from labsupport import device, isolate
from labsupport.scenarios import slow_cold_start as scenario
from labsupport.scenarios.slow_cold_start import checkpoint
from tests.labs import stubs
from tests.labs.truth import slow_cold_start as truth

_CACHE: dict = {}


def _checkpoint(seed: int) -> checkpoint.Checkpoint:
    """This variant's checkpoint at the grading size, once per session (removed at exit)."""
    key = ("checkpoint", seed)
    if key not in _CACHE:
        v = scenario.variant(seed)
        _CACHE[key] = checkpoint.make(v.shape("check"), v.extras, seed)
    return _CACHE[key]


# ---- diagnosis ----------------------------------------------------------------------------------
def _ask(lab, profile: dict, label: str) -> dict:
    got = lab.where_the_time_goes(profile)
    answer = truth.answer_of(got)
    assert answer is not None, (
        f"{label}: where_the_time_goes must return {{'storage_s': float, 'loader_s': float, "
        f"'needless_bytes': int, 'bound': 'storage' or 'loader'}}, got {got!r:.300}"
    )
    return answer


def _compare(lab, profile: dict, label: str) -> None:
    want = truth.where_the_time_goes(profile)
    got = _ask(lab, profile, label)
    if truth.same(got, want):
        return
    named = next(
        (name for name, miss in truth.near_misses(profile).items() if truth.same(got, miss)), None
    )
    pytest.fail(
        f"{label}: you said {got}, the profile says {want}."
        + (f" That is {named}." if named else "")
        + " The page cache is the only difference between the cold and the warm load; what the "
        "server needs is its bf16 weights; read_bytes is what the kernel fetched from storage",
        pytrace=False,
    )


def production_profile(seed: int) -> dict:
    """Production's start of the variant's checkpoint, cold then warm, once per session."""
    key = ("profile", seed)
    if key not in _CACHE:
        ckpt = _checkpoint(seed)
        r = isolate.run_function(
            "labsupport.scenarios.slow_cold_start.measure:profile",
            ckpt.directory,
            ckpt.needed_bytes,
            timeout_s=240,
        )
        if not r.ok:
            pytest.fail(f"measuring production's start failed (not your code): {r.error}",
                        pytrace=False)  # fmt: skip
        _CACHE[key] = r.value
    return _CACHE[key]


@pytest.mark.diagnosis
@pytest.mark.timeout(120)
def test_where_the_time_goes_matches_the_profiles(lab, seed):
    """where_the_time_goes agrees with the profiles: hand-made, written, and production's
    start measured in this run."""
    _compare(lab, truth.HAND_MADE, "a hand-made start (6 GB read cold in 42 s, 12 s warm)")
    for label, profile in truth.cases(seed).items():
        _compare(lab, profile, label)
    profile = production_profile(seed)
    assert profile["cold"]["resident_before"] < 0.05, (
        "the page cache could not be emptied here (is the checkpoint on tmpfs?): not your code"
    )
    _compare(lab, profile, f"production's start of variant {seed}'s checkpoint, this run")


# ---- fix ----------------------------------------------------------------------------------------
def trial(lab, seed: int):
    """Production's load and the learner's, cold, taking turns, contained; once per
    submission. (The trial, the process's duration.)"""
    ref = lab.ref("load_weights")
    stubs.fail_if_stub(ref)  # read, not run: a call would import torch in the submission
    key = ("trial", seed, hashlib.sha256(ref.source.encode()).hexdigest())
    if key not in _CACHE:
        ckpt = _checkpoint(seed)
        r = isolate.run_function(
            "labsupport.scenarios.slow_cold_start.measure:trial",
            ckpt.directory,
            ref,
            timeout_s=240,
        )
        if not r.ok:
            pytest.fail(f"your load_weights failed in the trial: {r.error}", pytrace=False)
        _CACHE[key] = (r.value, r.duration_s)
    return _CACHE[key]


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_load_weights_returns_the_weights_the_server_runs(lab, seed):
    """load_weights returns every served tensor, bf16, on the device, equal to the checkpoint's
    (sha256 of its bytes), and nothing else."""
    result, _ = trial(lab, seed)
    want = _checkpoint(seed).hashes
    got = result.tensors
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, (
        f"load_weights returned {len(got)} tensors, the server runs {len(want)}"
        + (f"; missing e.g. {missing[:2]}" if missing else "")
        + (f"; not the server's e.g. {extra[:2]}" if extra else "")
        + ": return the model's weights by their names, nothing else"
    )
    target = result.device.split(":")[0]
    for name, (dtype, where, _shape, digest) in sorted(got.items()):
        assert dtype == "torch.bfloat16", f"{name} is {dtype}: the server runs bf16 weights"
        assert where.split(":")[0] == target, f"{name} is on {where}, not {result.device}"
        assert digest == want[name], (
            f"{name} differs from the weights the server runs (sha256): load the same values"
        )


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_load_weights_reads_them_from_storage_itself(lab, seed):
    """Each cold load of load_weights fetches at least half the served bytes from storage (it
    really loads them, it does not find them already in memory)."""
    result, duration = trial(lab, seed)
    needed = _checkpoint(seed).needed_bytes
    yours = [x for x in result.loads if x.loader == "yours"]
    assert yours, "no load of yours was timed"
    assert sum(x.wall_s for x in result.loads) <= duration + 0.5, (
        "the trial's timings do not add up: leave the clocks alone"
    )
    assert all(x.resident_before < 0.05 for x in yours), "the page cache was not cold (not you)"
    least = min(x.read_bytes for x in yours)
    assert least >= truth.MIN_READ_SHARE * needed, (
        f"a cold load of yours fetched {least / 2**20:.1f} MiB from storage; the served weights "
        f"are {needed / 2**20:.1f} MiB: the weights must come from the files in `directory`, "
        "loaded by this call"
    )


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_load_weights_is_faster_cold_than_production(lab, seed):
    """Cold, in the same process, taking turns: production's fastest load over yours is at
    least MIN_SPEEDUP."""
    result, _ = trial(lab, seed)
    prod, yours = result.coldest("production"), result.coldest("yours")
    assert yours > 0, f"your load took {yours} s?"
    ratio = prod / yours
    assert ratio >= truth.MIN_SPEEDUP, (
        f"cold, on {result.device}: production {prod:.2f} s, yours {yours:.2f} s: only "
        f"{ratio:.1f}x faster (need {truth.MIN_SPEEDUP:g}x). Which file holds exactly what the "
        "server runs, and which loader gets it to the device without unpickling or copying?"
    )


@pytest.mark.gpu
@pytest.mark.timeout(150)
def test_on_a_gpu_the_weights_land_on_it(lab, seed):
    """With a GPU, the trial's device is CUDA and your tensors are on it."""
    assert device.cuda_available()
    result, _ = trial(lab, seed)
    assert result.device.startswith("cuda")
    assert all(where.startswith("cuda") for _, where, _, _ in result.tensors.values())
