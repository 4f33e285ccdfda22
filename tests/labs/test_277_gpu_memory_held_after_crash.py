"""Checks of lab 277, GPU memory held after a crash: who holds it, and three fixes.

Diagnosis: `diagnose(evidence)` must name the orphans, the zombies, the holders and what they
hold, first on written evidence built against the usual shortcuts (zombies counted as
orphans or holders, another container's process on the card, RSS summed for the card's
memory), then on this run's container: the variant's server SIGKILLed in a real PID namespace
whose entrypoint does not reap, observed from the node.

Fix: `worker_start` runs in every worker of a real server in a contained trial: the workers
must keep working while their parent lives (bounded from below), be gone within 2 s of the
parent's SIGKILL, with the card back to its baseline, and also when the parent died before
the hook ran (the race a late prctl loses). `before_restart` runs in the trial's supervisor
after the server died: the dead server's workers must go, a log shipper in another session
must survive, and the server must start again under its memory check. `entrypoint(command)`
must be an init around the server (checked statically, then run as the container's PID 1):
after a crash nothing may stay (no zombie, no memory held), and SIGTERM to PID 1 must end the
container within 3 s. Runs are measured once per session, seed and learner source (`_CACHE`).
"""

from __future__ import annotations

import hashlib
import math

import pytest

from labsupport.scenarios import gpu_memory_held_after_crash as scenario
from labsupport.scenarios.gpu_memory_held_after_crash import entrypoints, incident, trials
from tests.labs.truth import gpu_memory_held_after_crash as truth

_CACHE: dict = {}
KEYS = ("orphans", "zombies", "holders", "held_mib")
TINY = {
    "ps": [
        {"pid": 1, "ppid": 0, "stat": "S", "name": "init", "cmd": "init", "rss_kib": 900},
        {"pid": 7, "ppid": 1, "stat": "S", "name": "w", "cmd": "w", "rss_kib": 900},
        {"pid": 8, "ppid": 1, "stat": "Z", "name": "w", "cmd": "", "rss_kib": 0},
    ],
    "gpu": [{"pid": 7, "used_mib": 10.0}],
    "listening": [],
    "card": {"total_mib": 100.0, "used_mib": 10.0},
    "log": [],
}


def _incident(seed: int):
    key = ("incident", seed)
    if key not in _CACHE:
        try:
            _CACHE[key] = incident.run(scenario.variant(seed))
        except RuntimeError as exc:
            pytest.fail(f"the incident's container failed (not your code): {exc}", pytrace=False)
    return _CACHE[key]


# ---- diagnosis ---------------------------------------------------------------------------
def _diagnose(lab, evidence: dict, label: str) -> dict:
    got = lab.diagnose(evidence)
    assert isinstance(got, dict), f"{label}: diagnose must return a dict, not {type(got).__name__}"
    missing = [k for k in KEYS if k not in got]
    assert not missing, f"{label}: diagnose returned no {', '.join(missing)}"
    for k in KEYS[:3]:
        ok = isinstance(got[k], (list, tuple)) and all(
            isinstance(p, int) and not isinstance(p, bool) for p in got[k]
        )
        assert ok, f"{label}: {k} must be a list of PIDs (ints), got {got[k]!r}"
    held = got["held_mib"]
    ok = isinstance(held, (int, float)) and not isinstance(held, bool) and math.isfinite(held)
    assert ok, f"{label}: held_mib must be a number, got {held!r}"
    return got


def _which_miss(got: dict, evidence: dict, key: str) -> str:
    for name, miss in truth.near_misses(evidence).items():
        if key in miss:
            value = miss[key]
            if key == "held_mib":
                if abs(float(got[key]) - value) <= truth.MIB_TOLERANCE:
                    return f" That is {name}."
            elif sorted(got[key]) == sorted(value):
                return f" That is {name}."
    return ""


def _compare(lab, evidence: dict, label: str) -> None:
    want = truth.diagnosis(evidence)
    got = _diagnose(lab, evidence, label)
    hints = {
        "zombies": "a zombie has exited: ps shows it in state Z, with no memory of its own",
        "orphans": "an orphan is alive and was re-parented to PID 1 when its parent died",
        "holders": "the live processes of this container that the card lists",
    }
    for key in KEYS[:3]:
        assert sorted(got[key]) == want[key], (
            f"{label}: {key} {sorted(got[key])}, the evidence shows {want[key]}."
            + _which_miss(got, evidence, key)
            + f" ({hints[key]})"
        )
    assert abs(float(got["held_mib"]) - want["held_mib"]) <= truth.MIB_TOLERANCE, (
        f"{label}: held_mib {got['held_mib']}, the holders hold {want['held_mib']} MiB on the "
        "card." + _which_miss(got, evidence, "held_mib") + " Sum the card's list, ours only"
    )


@pytest.mark.diagnosis
@pytest.mark.timeout(120)
def test_diagnosis_tells_orphans_zombies_and_holders_apart(lab, seed):
    """diagnose names orphans, zombies and holders: written evidence, then this run's."""
    _compare(lab, TINY, "a container with one live worker on the card and one zombie")
    for label, evidence in truth.evidence_cases(seed).items():
        _compare(lab, evidence, label)
    run = _incident(seed)
    assert run.after is not None and run.after.ps, (
        "the incident's container did not get to the crash (not your code): "
        + " | ".join(run.log[-3:])
    )
    _compare(lab, run.evidence(), "this run's container")


# ---- fix: the workers -----------------------------------------------------------------------
def _needs_sandbox() -> None:
    """These fixes signal processes: they run only where the sandbox has a PID namespace."""
    from labsupport import contain

    box = contain.sandbox()
    if box.mode != "namespaces":
        pytest.fail(
            f"this check runs your code only inside the grading sandbox, and here it is "
            f"{box.describe()} (see `srelab doctor`)",
            pytrace=False,
        )


def _source_key(lab, name: str) -> str:
    return hashlib.sha256(lab.ref(name).source.encode()).hexdigest()[:16]


def _worker_trial(lab, seed: int) -> dict:
    key = ("worker_start", seed, _source_key(lab, "worker_start"))
    if key not in _CACHE:
        _CACHE[key] = trials.run("worker_start", lab.ref("worker_start"), scenario.variant(seed))
    return _CACHE[key]


def _tolerance() -> int:
    from labsupport import device

    return truth.HELD_TOLERANCE_GPU_BYTES if device.cuda_available() else truth.HELD_TOLERANCE_BYTES


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_worker_start_takes_workers_down_with_their_parent(lab, seed):
    """Workers live while their parent lives, and are gone 2 s after it is SIGKILLed."""
    _needs_sandbox()
    out = _worker_trial(lab, seed)
    problems = truth.worker_start_problems(out, "parent_killed")
    assert not problems, "; ".join(problems)
    killed = out["parent_killed"]
    held = killed["used_after"] - killed["used_before"]
    assert held <= _tolerance(), (
        f"the workers are gone but {held / 2**20:.0f} MiB of the card stayed held"
    )


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_worker_start_covers_a_parent_that_died_first(lab, seed):
    """Workers whose parent died before their hook ran are gone within 2 s too."""
    _needs_sandbox()
    out = _worker_trial(lab, seed)
    problems = truth.worker_start_problems(out, "parent_died_first")
    assert not problems, "; ".join(problems)
    first = out["parent_died_first"]
    held = first["used_after"] - first["used_before"]
    assert held <= _tolerance(), (
        f"the workers are gone but {held / 2**20:.0f} MiB of the card stayed held"
    )


# ---- fix: the supervisor ------------------------------------------------------------------
def _no_such_group() -> int:
    """A process-group ID that exists neither here nor in the submission's namespace."""
    import os

    pgid = 4_194_000
    while os.path.exists(f"/proc/{pgid}"):
        pgid -= 1
    return pgid


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_before_restart_frees_the_card_and_spares_the_rest(lab, seed):
    """After before_restart the old workers are gone, the shipper lives, the server restarts."""
    _needs_sandbox()
    gone = _no_such_group()
    try:  # a stub fails here, before anything starts
        lab.before_restart(gone)
    except ProcessLookupError:
        pytest.fail(
            f"before_restart({gone}) raised ProcessLookupError: that group is gone already (a "
            "supervisor may come too late, or twice). Nothing to do is not an error",
            pytrace=False,
        )
    key = ("before_restart", seed, _source_key(lab, "before_restart"))
    if key not in _CACHE:
        _CACHE[key] = trials.run(
            "before_restart", lab.ref("before_restart"), scenario.variant(seed)
        )
    problems = truth.before_restart_problems(_CACHE[key])
    assert not problems, "; ".join(problems)


# ---- fix: the container's PID 1 -----------------------------------------------------------
def _entrypoint(lab, command: list[str], label: str) -> tuple[list[str], list[str]]:
    got = lab.entrypoint(list(command))
    server = incident.server_part(command)
    try:
        init, rest = entrypoints.split(got, [command, server])
    except ValueError as exc:
        pytest.fail(f"{label}: {exc}", pytrace=False)
    if not init:
        pytest.fail(
            f"{label}: {' '.join(got)[:80]!r} runs the command itself as PID 1: a PID 1 "
            "without signal handlers ignores SIGTERM, and who reaps what it adopts?",
            pytrace=False,
        )
    return list(got), rest


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_entrypoint_puts_an_init_around_the_server(lab, seed):
    """entrypoint returns an init (tini, dumb-init) around exactly the command or its server."""
    for command in truth.entrypoint_inputs() + [incident.command(scenario.variant(seed))]:
        _entrypoint(lab, command, f"for {' '.join(command)[:60]!r}")


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_entrypoint_leaves_nothing_after_a_crash_and_stops_on_sigterm(lab, seed):
    """As PID 1: after the server's SIGKILL nothing stays; SIGTERM ends it within 3 s."""
    v = scenario.variant(seed)
    command = incident.command(v)
    argv, _ = _entrypoint(lab, command, "this variant's container")
    key = ("entrypoint", seed, tuple(argv))
    if key not in _CACHE:
        try:
            crash = incident.run(v, command=command, entrypoint=argv, action="crash")
            stop = incident.run(v, command=command, entrypoint=argv, action="stop")
        except (RuntimeError, ValueError) as exc:
            pytest.fail(f"the container did not run: {exc}", pytrace=False)
        _CACHE[key] = (crash, stop)
    crash, stop = _CACHE[key]
    problems = truth.entrypoint_problems(crash, stop, _tolerance())
    assert not problems, "; ".join(problems)
