"""Checks of lab 284, DataLoader workers die: the need, the cause, the settings, the Pod.

Diagnosis: `shm_needed_bytes(loader)` is compared with the reference on written loaders
(dtypes, workers, prefetch, no workers at all: each usual shortcut gives another number and
the hint names it), then with the peak /dev/shm use measured while this variant's loader and a
second one ran for real in an ample tmpfs: a sizing below a measured peak fails. `diagnose(
evidence)` must name the cause ("loader": it needs more than the room; "occupied": it fits
an empty room, something else holds it) with the need and the free room, on written incidents
built against the usual shortcuts (a few KiB of semaphores, df used while ls shows nothing)
and on this run's incident, measured in a private mount namespace with the variant's 64 MiB
/dev/shm and whatever a killed process left in it.

Fix: `loader_settings` must fit the free room (bounded from above by the reference need) and
keep the workers the GPU step needs (bounded from below), on written inputs; then the loader
runs for real with them in the variant's /dev/shm, leftovers included, and must train to the
end without waiting for data most of the time. `pod_manifest` must be a valid Pod with a
memory-backed emptyDir on /dev/shm whose sizeLimit follows the need from both sides and a
memory limit that pays for it; then the incident's loader runs for real in the tmpfs the
kubelet would give that Pod (the smaller of sizeLimit and the memory limit) and must finish.
Runs are measured once per session and seed (`_CACHE`).
"""

from __future__ import annotations

import pytest

from labsupport.k8s import manifests
from labsupport.scenarios import dataloader_bus_error as scenario
from labsupport.scenarios.dataloader_bus_error import pod as podlib
from labsupport.scenarios.dataloader_bus_error import runs
from labsupport.scenarios.dataloader_bus_error.loader import LoaderConfig
from tests.labs.truth import dataloader_bus_error as truth

_CACHE: dict = {}
MiB, GiB = 2**20, 2**30
AMPLE_BYTES = 512 * MiB
TINY = {"sample_shape": [2, 4, 4], "dtype": "float32", "batch_size": 2, "num_workers": 1,
        "prefetch_factor": 1, "pin_memory": False}  # fmt: skip


def _measured(seed: int) -> dict[str, runs.LoaderRun]:
    """The variant's incident in its /dev/shm, and two loaders in an ample one (once)."""
    key = ("measured", seed)
    if key not in _CACHE:
        v = scenario.variant(seed)
        arms = [
            v.arm("incident"),
            v.arm("incident loader, ample room", room_bytes=AMPLE_BYTES, as_found=False),
            v.arm("second loader, ample room", v.other, room_bytes=AMPLE_BYTES, as_found=False),
        ]
        try:
            _CACHE[key] = {r.arm: r for r in runs.run(arms)}
        except RuntimeError as exc:
            pytest.fail(f"the loader runs failed (not your code): {exc}", pytrace=False)
    return _CACHE[key]


# ---- diagnosis ---------------------------------------------------------------------------
def _need(lab, loader: dict, label: str) -> int:
    got = lab.shm_needed_bytes(dict(loader))
    ok = isinstance(got, (int, float)) and not isinstance(got, bool) and got >= 0
    assert ok and got == got, (
        f"{label}: shm_needed_bytes must return a number of bytes, got {got!r}"
    )
    return int(got)


def _which_miss(got: int, loader: dict) -> str:
    low, high = truth.accepted_range(loader)
    for name, value in truth.near_misses(loader).items():
        if not low <= value <= high and abs(got - value) <= max(truth.PAGE, 0.005 * value):
            return f" That is {name}."
    return ""


@pytest.mark.diagnosis
@pytest.mark.timeout(120)
def test_shm_needed_matches_written_loaders_and_measured_peaks(lab, seed):
    """shm_needed_bytes gives each loader's need: written configurations, then measured peaks."""
    tiny = _need(lab, TINY, "a loader of 32-byte samples")
    low, high = truth.accepted_range(TINY)
    assert low <= tiny <= high, (
        f"one worker, prefetch_factor 1, batches of 2 samples of 2x4x4 float32 (256 bytes a "
        f"batch): you returned {tiny} bytes."
        + _which_miss(tiny, TINY)
        + " Count the batches that can be in shared memory at once, times a batch's bytes"
    )
    for label, loader in truth.loader_cases(seed).items():
        got = _need(lab, loader, label)
        low, high = truth.accepted_range(loader)
        assert low <= got <= high, (
            f"{label}: you returned {got / MiB:.2f} MiB, the loader can hold "
            f"{truth.needed_bytes(loader) / MiB:.2f} MiB in /dev/shm at once."
            + _which_miss(got, loader)
            + " Bytes of a batch (shape x dtype size x batch size) times the batches in flight "
            "(each worker's prefetch) and in the training loop's hands"
        )
    for label, run in _measured(seed).items():
        if run.arm == "incident":
            continue
        loader = run.loader.as_dict()
        got = _need(lab, loader, label)
        assert got >= truth.MEASURED_SLACK * run.loader_peak_bytes, (
            f"{label} (a real run of {run.loader.describe()}): its /dev/shm use peaked at "
            f"{run.loader_peak_bytes / MiB:.1f} MiB, you size it {got / MiB:.1f} MiB."
            + _which_miss(got, loader)
            + " While the first step runs, every worker fills its prefetch; the loop holds one "
            "batch more"
        )


def _diagnose(lab, evidence: dict, label: str) -> dict:
    got = lab.diagnose(dict(evidence))
    assert isinstance(got, dict), f"{label}: diagnose must return a dict, not {type(got).__name__}"
    missing = sorted({"cause", "needed_bytes", "free_bytes"} - set(got))
    assert not missing, f"{label}: diagnose returned no {', '.join(missing)}"
    assert got["cause"] in truth.CAUSES, (
        f"{label}: cause must be one of {truth.CAUSES}, not {got['cause']!r}"
    )
    for key in ("needed_bytes", "free_bytes"):
        value = got[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        assert ok, f"{label}: {key} must be a number of bytes, got {value!r}"
    return got


def _compare(lab, evidence: dict, label: str) -> None:
    want = truth.diagnosis(evidence)
    got = _diagnose(lab, evidence, label)
    low, high = truth.accepted_range(evidence["loader"])
    assert low <= got["needed_bytes"] <= high, (
        f"{label}: needed_bytes {got['needed_bytes'] / MiB:.2f} MiB, the loader can hold "
        f"{want['needed_bytes'] / MiB:.2f} MiB at once (use shm_needed_bytes)"
    )
    assert abs(got["free_bytes"] - want["free_bytes"]) <= truth.PAGE, (
        f"{label}: free_bytes {got['free_bytes'] / MiB:.2f} MiB; /dev/shm had "
        f"{want['free_bytes'] / MiB:.2f} MiB free when the job started (df: size less used, "
        "before the loader ran)"
    )
    assert got["cause"] == want["cause"], (
        f"{label}: you said {got['cause']!r}. The loader needs "
        f"{want['needed_bytes'] / MiB:.1f} MiB, the room is "
        f"{evidence['room_bytes'] / MiB:.0f} MiB and {want['free_bytes'] / MiB:.1f} MiB of it "
        "were free at the start: would it fit an empty room?"
    )


@pytest.mark.diagnosis
@pytest.mark.timeout(120)
def test_diagnosis_names_the_cause_with_this_runs_numbers(lab, seed):
    """diagnose names the cause, the need and the free room: written incidents, then this run."""
    tiny = {"room_bytes": 1 * MiB, "used_before_bytes": 0, "listing_before": [],
            "loader": TINY, "timeline": [[0.0, 0]], "steps_done": 0, "error": ""}  # fmt: skip
    _compare(lab, tiny, "an empty 1 MiB room and a loader of 256-byte batches")
    for label, evidence in truth.evidence_cases(seed).items():
        _compare(lab, evidence, label)
    run = _measured(seed)["incident"]
    assert not run.completed, (
        "the incident's loader did not fail in its /dev/shm this time (not your code): "
        + run.summary()
    )
    _compare(lab, run.evidence(), "this run's incident")


# ---- fix: loader settings ----------------------------------------------------------------
def _settings(lab, loader: dict, free: int, min_workers: int, label: str) -> dict:
    got = lab.loader_settings(dict(loader), free, min_workers)
    problems = truth.settings_problems(got, loader, free, min_workers)
    assert not problems, f"{label}: " + "; ".join(problems)
    return got


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_loader_settings_fit_the_free_room_and_keep_the_workers(lab, seed):
    """loader_settings fits the free room and keeps enough workers, on written inputs."""
    _settings(lab, {**TINY, "num_workers": 4, "prefetch_factor": 4}, 2048, 1,
              "256-byte batches, 2 KiB free, one worker needed")  # fmt: skip
    for loader, free, min_w in truth.settings_inputs(seed):
        label = (
            f"{LoaderConfig.from_dict(loader).describe()}, {free / MiB:.0f} MiB free, "
            f"{min_w} workers needed"
        )
        _settings(lab, loader, free, min_w, label)


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_loader_settings_train_to_the_end_in_the_same_room(lab, seed):
    """With the learner's settings the loader trains to the end in the incident's /dev/shm."""
    v = scenario.variant(seed)
    free = v.room_bytes - sum(v.found_bytes)
    settings = _settings(lab, v.loader.as_dict(), free, v.min_workers, "this variant's loader")
    key = ("settings", seed, settings["num_workers"], settings.get("prefetch_factor"),
           settings.get("sharing_strategy"))  # fmt: skip
    if key not in _CACHE:
        cfg = v.loader.with_settings(settings["num_workers"], settings.get("prefetch_factor"))
        arm = v.arm("your settings", cfg)
        if settings.get("sharing_strategy"):
            import dataclasses

            arm = dataclasses.replace(arm, sharing_strategy=str(settings["sharing_strategy"]))
        try:
            [_CACHE[key]] = runs.run([arm])
        except RuntimeError as exc:
            pytest.fail(f"the loader run failed (not your code): {exc}", pytrace=False)
    run = _CACHE[key]
    assert run.completed, (
        f"with your settings the job died in its {v.room_bytes / MiB:.0f} MiB /dev/shm "
        f"({free / MiB:.0f} MiB free) after {run.steps_done}/{run.steps_wanted} steps: "
        f"{(run.error or '').splitlines()[-1:]}"
    )
    assert run.idle_fraction <= truth.MAX_IDLE, (
        f"the job finished, but the training loop waited for data "
        f"{100 * run.idle_fraction:.0f}% of the time (at most {100 * truth.MAX_IDLE:.0f}%): "
        "too few workers for a GPU step that needs a batch every "
        f"{1000 * v.pace.step_s:.0f} ms"
    )


# ---- fix: the Pod -------------------------------------------------------------------------
def _pod(lab, loader: dict, job: int, label: str) -> dict:
    text = lab.pod_manifest(dict(loader), job)
    assert isinstance(text, str) and text.strip(), (
        f"{label}: pod_manifest must return the Pod as a YAML string, got {type(text).__name__}"
    )
    try:
        obj = manifests.validate(text, require_command=False)
    except manifests.ManifestError as exc:
        pytest.fail(
            f"{label}: not a valid Kubernetes manifest:\n"
            + "\n".join(f"  - {e}" for e in exc.errors),
            pytrace=False,
        )
    assert obj["kind"] == "Pod", (
        f"{label}: return a v1 Pod like the incident's, not a {obj['kind']}"
    )
    problems = truth.pod_problems(obj, loader, job)
    assert not problems, f"{label}: " + "; ".join(problems)
    return obj


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_pod_manifest_sizes_shm_and_memory_from_the_need(lab, seed):
    """pod_manifest mounts a sized, memory-backed emptyDir on /dev/shm and pays for it."""
    _pod(lab, {**TINY, "batch_size": 2**20}, GiB, "a loader of 128 MiB batches, a 1 GiB trainer")
    for loader, job in truth.pod_inputs(seed):
        label = f"{LoaderConfig.from_dict(loader).describe()}, trainer {job / GiB:.1f} GiB"
        _pod(lab, loader, job, label)
    v = scenario.variant(seed)
    _pod(lab, v.loader.as_dict(), v.job_memory_bytes, "this variant's job")


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_pod_runs_the_job_to_the_end(lab, seed):
    """In the /dev/shm the kubelet gives that Pod, the incident's loader trains to the end."""
    v = scenario.variant(seed)
    obj = _pod(lab, v.loader.as_dict(), v.job_memory_bytes, "this variant's job")
    room = podlib.read(obj).shm_room_bytes
    key = ("pod", seed, room)
    if key not in _CACHE:
        # a new pod: its emptyDir starts empty, whatever the old container left behind
        arm = v.arm("your Pod", room_bytes=room, as_found=False)
        try:
            [_CACHE[key]] = runs.run([arm])
        except RuntimeError as exc:
            pytest.fail(f"the loader run failed (not your code): {exc}", pytrace=False)
    run = _CACHE[key]
    assert run.completed, (
        f"in your Pod's {room / MiB:.0f} MiB /dev/shm the job died after "
        f"{run.steps_done}/{run.steps_wanted} steps: {(run.error or '').splitlines()[-1:]}"
    )
