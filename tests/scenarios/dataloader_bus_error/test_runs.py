"""Runs of the loader under a given /dev/shm: fits, overflows, found segments, SIGBUS, stand-in."""

import dataclasses

import pytest

from labsupport import isolate
from labsupport.linux import mounts
from labsupport.scenarios.dataloader_bus_error import runs
from labsupport.scenarios.dataloader_bus_error.loader import LoaderConfig, Pace

MiB = 2**20
CFG = LoaderConfig((3, 128, 128), "float32", 4, 2, 2)  # 768 KiB batches
PACE = Pace(read_s=0.002, step_s=0.005, warmup_s=0.3)


@pytest.fixture(scope="module")
def measured():
    if mounts.probe().mode == "none":
        pytest.skip("no private mounts here")
    cache_arm = dataclasses.replace(
        runs.Arm("cache", CFG.with_settings(2, 2), 8 * MiB, steps=20, pace=PACE),
        cache_samples=True,
    )
    arms = [
        runs.Arm("roomy", CFG, 16 * MiB, steps=12, pace=PACE),
        runs.Arm("tight", CFG, 3 * MiB, steps=12, pace=PACE),
        runs.Arm("found", CFG, 16 * MiB, found_bytes=(6 * MiB, 4 * MiB), steps=12, pace=PACE),
        cache_arm,
    ]
    return {r.arm: r for r in runs.run(arms)}


def test_a_roomy_shm_trains_to_the_end_and_peaks_at_the_prefetch_plus_the_loop(measured):
    r = measured["roomy"]
    assert r.completed and r.mode in ("root", "user namespace")
    batches = r.loader_peak_bytes / CFG.batch_bytes
    assert 2 * 2 + 1 - 0.1 <= batches <= 2 * 2 + 2 + 0.1  # workers x prefetch + 1 or 2
    assert r.room_bytes == 16 * MiB and r.used_before_bytes == 0


def test_a_full_shm_kills_the_job_with_torchs_message(measured):
    r = measured["tight"]
    assert not r.completed and r.steps_done < 12
    assert "unable to allocate shared memory" in r.error or "Bus error" in r.error
    assert r.peak_bytes <= r.room_bytes


def test_segments_of_a_killed_process_stay_and_are_counted(measured):
    r = measured["found"]
    assert r.used_before_bytes == 10 * MiB
    assert sorted(size for _, size in r.listing_before) == [4 * MiB, 6 * MiB]
    assert all(name.startswith("psm_") for name, _ in r.listing_before)
    assert r.peak_bytes >= r.used_before_bytes + r.loader_peak_bytes - 1


def test_an_unreserved_segment_that_cannot_be_backed_is_a_bus_error(measured):
    r = measured["cache"]
    assert not r.completed
    assert "Bus error" in r.error


def test_evidence_is_plain_data(measured):
    ev = measured["found"].evidence()
    assert ev["room_bytes"] == 16 * MiB and ev["loader"]["batch_size"] == 4
    assert isinstance(ev["timeline"][0], list) and len(ev["timeline"]) <= runs.MAX_POINTS + 2


def test_the_stand_in_stops_a_loader_that_outgrows_its_room():
    arms = [runs.Arm("tight", CFG, 2 * MiB, steps=10, pace=PACE)]
    r = isolate.run_function(
        "labsupport.scenarios.dataloader_bus_error.runs:_workload", arms, True, timeout_s=120
    )
    assert r.ok, r.error
    [run] = r.value
    assert run.mode == "stand-in" and not run.completed
