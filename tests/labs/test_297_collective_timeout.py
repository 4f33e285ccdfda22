"""Checks of lab 297 (collective operation timed out): the desync found, the step, the settings.

Diagnosis: the learner's `first_unfinished` is compared with the reference rule
(`tests/labs/truth/collective_timeout.py`) on a hand-made dump, on written dumps built so that
the usual wrong readings give other answers (the collective the rank ran instead, counting from
0, the shortest buffer, the first or last rank waiting, several ranks, NCCL running ahead, no
rank at fault), and on the flight-recorder dumps of this variant's real two-rank job. Fix: the
learner's `decode_step` runs in both ranks (contained) over a job in which every kind of empty
local state happens; every rank must finish, every rank must have called the same collectives
(the flight recorder says so), and the results must be the ones the grader recomputes. The
learner's `job_settings` is bounded from both sides on four jobs, then production's job runs
with them twice: healthy (no false timeout) and as the incident (every rank exits by itself
with its dump, within the timeout, and the dumps name the right rank).
Every run is measured once per session and seed or submission (`_CACHE`).
"""

from __future__ import annotations

import hashlib

import pytest

from labsupport.distributed import flight
from labsupport.scenarios import collective_timeout as scenario
from labsupport.scenarios.collective_timeout import runs
from tests.labs import stubs
from tests.labs.truth import collective_timeout as truth

_CACHE: dict = {}


# ---- diagnosis ----------------------------------------------------------------------------------
def _ask(lab, traces: dict, label: str) -> dict:
    got = lab.first_unfinished({r: list(t) for r, t in traces.items()})
    answer = truth.answer_of(got)
    assert answer is not None, (
        f"{label}: first_unfinished must return {{'rank': int or None, 'op': str, 'seq': int}}, "
        f"got {got!r}"
    )
    return answer


def _miss(got: dict, traces: dict) -> str:
    for name, value in truth.near_misses(traces).items():
        if got == value:
            return f" That is {name}."
    return ""


def _compare(lab, traces: dict, label: str) -> None:
    want = truth.first_unfinished(traces)
    got = _ask(lab, traces, label)
    assert got == want, (
        f"{label}: you said {got}, the dumps say {want}." + _miss(got, traces) + " Find the first "
        "sequence number not finished on every rank, what the program runs there (what followed "
        "the collective before it, step after step), and the rank whose entry differs or is "
        "missing (None when every rank entered it)"
    )


def recorded_run(seed: int):
    """The variant's production job with the flight recorder on, once per session."""
    key = ("recorded", seed)
    if key not in _CACHE:
        run = runs.recorded(scenario.variant(seed).plan)
        lost = len(run.traces) < run.world_size
        if lost or truth.first_unfinished(run.traces) != truth.variant_answer(seed):
            # a machine so slow that a dump was lost or a healthy wait timed out: once more
            run = runs.recorded(scenario.variant(seed).plan)
        _CACHE[key] = run
    return _CACHE[key]


@pytest.mark.diagnosis
@pytest.mark.timeout(120)
def test_first_unfinished_names_the_rank_the_collective_and_its_sequence_number(lab, seed):
    """first_unfinished agrees with the dumps: hand-made, written and the real job's."""
    _compare(lab, truth.HAND_MADE, "a hand-made dump (rank 0 left out seq 5)")
    for label, traces in truth.cases(seed).items():
        _compare(lab, traces, label)
    run = recorded_run(seed)
    if len(run.traces) < run.world_size:
        pytest.fail(
            f"the job's ranks did not both dump their flight recorder (not your code):\n"
            f"{run.summary()}",
            pytrace=False,
        )
    want = truth.variant_answer(seed)
    assert truth.first_unfinished(run.traces) == want, f"the real run went astray: {run.summary()}"
    got = _ask(lab, run.traces, "the real job's dumps")
    assert got == want, (
        f"the real job of variant {seed}: you said {got}, the dumps say {want}."
        + _miss(got, run.traces)
    )


# ---- fix: the step ------------------------------------------------------------------------------
def step_run(lab, seed: int):
    """The learner's decode_step in both ranks over the grading job, once per submission."""
    ref = lab.ref("decode_step")
    stubs.fail_if_stub(ref)  # a step runs only in a process group: read, do not run
    key = ("step", seed, hashlib.sha256(ref.source.encode()).hexdigest())
    if key not in _CACHE:
        plan = scenario.variant(seed).grading_plan()
        _CACHE[key] = (plan, runs.with_step(plan, ref))
    return _CACHE[key]


def _where_it_stopped(run) -> str:
    if len(run.traces) == run.world_size:
        found = truth.first_unfinished(run.traces)
        if found["rank"] is not None:
            return (
                f" The ranks' flight recorders: at seq {found['seq']} the job runs "
                f"{found['op']}, and rank {found['rank']} did not call it."
            )
    return ""


@pytest.mark.fix
@pytest.mark.timeout(120)
def test_every_rank_finishes_every_step(lab, seed):
    """With your decode_step both ranks finish a job in which each kind of empty state happens."""
    plan, run = step_run(lab, seed)
    failed = [r for r in run.ranks if not r.ok]
    if not failed:
        return
    r = failed[0]
    steps = runs.steps_done(run)
    pytest.fail(
        f"rank {r.rank} did not finish ({steps[r.rank]} of {plan.steps} steps): "
        + (f"{r.error[:300]}" if r.error else "it was stopped")
        + "."
        + _where_it_stopped(run)
        + " Every rank must call every collective of the step, whatever its own state",
        pytrace=False,
    )


@pytest.mark.fix
@pytest.mark.timeout(120)
def test_every_rank_calls_the_same_collectives(lab, seed):
    """The flight recorders of both ranks show the step's three collectives, every step, the
    same on both ranks."""
    plan, run = step_run(lab, seed)
    want = truth.expected_collectives(plan)
    assert len(run.traces) == run.world_size, (
        "no flight-recorder record came back from every rank: the job did not finish "
        "(see the check above)" + _where_it_stopped(run)
    )
    for rank, entries in sorted(run.traces.items()):
        got = [(c.seq, c.op, c.sizes) for c in flight.collectives(entries)]
        if got == want:
            continue
        pairs = zip(got, want, strict=False)
        diff = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(got), len(want)))
        runs_there = want[diff][1:] if diff < len(want) else "nothing more"
        ran = got[diff][1:] if diff < len(got) else "nothing"
        pytest.fail(
            f"rank {rank} called {len(got)} collectives, the job's {plan.steps} steps need "
            f"{len(want)}: in step {diff // len(scenario.OPS)} the program runs {runs_there}, "
            f"rank {rank} ran {ran}. Keep production's three collectives, same tensors, in the "
            "same order, on every rank",
            pytrace=False,
        )


@pytest.mark.fix
@pytest.mark.timeout(120)
def test_results_are_what_the_ranks_should_compute(lab, seed):
    """Every step's batch, summed hidden state and gathered tokens, on every rank, are the
    grader's: zeros are the neutral part of a sum, FINISHED (-1) the token of a finished rank."""
    plan, run = step_run(lab, seed)
    want = truth.expected_results(plan)
    done = [r for r in run.ranks if r.ok]
    assert done, "no rank finished the job: see the first check" + _where_it_stopped(run)
    for r in done:
        got = r.value
        assert isinstance(got, list) and len(got) == len(want), f"rank {r.rank}: {got!r:.200}"
        for g, w in zip(got, want, strict=True):
            if g == w:
                continue
            field = next(k for k in ("tokens", "hidden", "out") if g.get(k) != w[k])
            quiet = [q for q in plan.quiet if q.step == w["step"]]
            pytest.fail(
                f"rank {r.rank}, step {w['step']}: its {field} is {g.get(field)!r}, the grader "
                f"computes {w[field]!r}"
                + (f" (in that step: {quiet})" if quiet else "")
                + ". A rank with nothing routed adds zeros to the sum; a rank whose requests "
                "all finished gathers FINISHED tokens; every rank uses rank 0's batch",
                pytrace=False,
            )


# ---- fix: the settings --------------------------------------------------------------------------
@pytest.mark.fix
@pytest.mark.timeout(60)
def test_job_settings_are_bounded_from_both_sides(lab, seed):
    """job_settings: a timeout between 1.5x and 5x the slowest healthy wait, the flight recorder
    on and dumped on timeout, no debug-only or interface settings - for four jobs."""
    for wait in truth.static_waits(seed):
        problems = truth.settings_problems(lab.job_settings(wait), wait)
        assert not problems, f"job_settings({wait:g}): " + "; ".join(problems)


def settings_runs(lab, seed: int):
    """Production's job with the learner's settings: healthy, then as the incident."""
    v = scenario.variant(seed)
    wait = truth.check_wait_s(v.plan)
    settings = lab.job_settings(wait)
    problems = truth.settings_problems(settings, wait)
    assert not problems, f"fix job_settings first: job_settings({wait:g}): {problems[0]}"
    key = ("settings", seed, repr(sorted(runs.Settings.of(settings).env.items())),
           settings["timeout_s"])  # fmt: skip
    if key not in _CACHE:
        _CACHE[key] = (settings, runs.with_settings(v.healthy, settings),
                       runs.with_settings(v.plan, settings))  # fmt: skip
    return _CACHE[key]


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_the_healthy_job_runs_through_with_your_settings(lab, seed):
    """With your settings, the same job without the empty state finishes: rank 0's checkpoint
    does not time the other rank out."""
    settings, healthy, _ = settings_runs(lab, seed)
    assert healthy.finished, (
        f"with timeout_s={settings['timeout_s']:g} the healthy job did not finish:\n"
        + healthy.summary()
        + "\nWhile rank 0 saves its checkpoint the other rank waits in the next collective: "
        "the timeout must outlast that wait"
    )


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_the_incident_reports_itself_with_your_settings(lab, seed):
    """With your settings, the incident's job ends by itself within the timeout, every rank
    with its flight-recorder dump, and the dumps name the rank that broke the order."""
    settings, _, broken = settings_runs(lab, seed)
    stall, report = runs.stall_s(broken), runs.report_s(broken)
    assert report is not None and stall is not None, (
        "with your settings the incident's job did not end by itself with every rank's dump:\n"
        + broken.summary()
    )
    took = report - stall
    limit = settings["timeout_s"] + truth.REPORT_SLACK_S
    assert took <= limit, (
        f"the job reported {took:.1f} s after its last step, more than your timeout "
        f"({settings['timeout_s']:g} s) + {truth.REPORT_SLACK_S:g} s"
    )
    found = truth.first_unfinished(broken.traces)
    assert found == truth.variant_answer(seed), (
        f"the dumps of your run say {found}, not what the job did "
        f"({truth.variant_answer(seed)}): keep the flight recorder's buffer large enough "
        "to hold the last steps"
    )
