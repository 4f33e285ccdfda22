"""Checks of lab 299 (errors during every rollout): diagnosis, SIGTERM handler, manifest, rollout.

Diagnosis: the learner's attribution is compared with the reference rule
(`tests/labs/truth/errors_during_rollout.py`) on hand-made rollouts built to separate the
causes from their near misses (deletion vs SIGTERM, killed vs cut, the boundaries, statuses that
do not decide), on generated rollouts of this seed, and on a real rollout of the variant's
production Deployment (real server processes, signals, balancer, streaming clients), measured
once per session. Fix: the handler runs in a contained process against a simulated server and
is judged here from what it measured; the manifest function is asked for this variant's cluster
and three others, each bounded from both sides; then a rollout under load with the learner's
handler in the real servers and their manifest must lose nothing, judged from what the clients
and the supervisor saw (no request failed, no SIGKILL, every old process exited 0, capacity
kept as the strategy promises).
"""

from __future__ import annotations

import hashlib
import random

import pytest

from labsupport import isolate
from labsupport.k8s.traffic import RequestRecord
from labsupport.scenarios.errors_during_rollout import handler_trial, load, variant
from labsupport.scenarios.errors_during_rollout.load import LoadConfig, PodLifecycle
from labsupport.scenarios.errors_during_rollout.settings import production_manifest
from tests.labs.truth import errors_during_rollout as truth

ADVICE = {
    "sent_after_sigterm": "requests still reached pods after their SIGTERM: the balancers had "
    "not yet learned of the endpoint removal (what keeps the pod serving until they have?)",
    "killed_at_deadline": "streams were SIGKILLed at the end of the grace period (when "
    "does the grace period start counting?)",
    "cut_at_sigterm": "streams in flight at SIGTERM were cut (does the server finish them?)",
    "other": "requests failed with no SIGTERM involved: look at the pods' logs",
}
_RUNS: dict = {}  # (seed, arm) -> RolloutRun, measured once per session
_TRIALS: dict = {}  # sha256 of the learner's cells -> problems of their handler


# ---- diagnosis ------------------------------------------------------------------------------
def _made_up():
    """Pods with and without a hook and a SIGKILL; one failed request per near miss."""
    pods = {
        "old-a": PodLifecycle("old-a", "old", deleted_s=1.0, sigterm_s=1.0, sigkill_s=1.5),
        "old-h": PodLifecycle(
            "old-h", "old", deleted_s=2.0, pre_stop_s=2.0, sigterm_s=2.6, exited_s=3.0
        ),
        "old-k": PodLifecycle(
            "old-k", "old", deleted_s=4.0, pre_stop_s=4.0, sigterm_s=4.5, sigkill_s=5.0
        ),
        "new-b": PodLifecycle("new-b", "new", created_s=0.0),
    }
    rows = [
        (0, 0.2, 0.9, "ok", "old-a"),
        (1, 0.5, 1.01, "truncated", "old-a"),  # cut at SIGTERM
        (2, 1.2, 1.21, "http_error", "old-a"),  # sent after SIGTERM
        (3, 0.8, 1.52, "truncated", "old-a"),  # killed at the deadline
        (4, 0.3, 0.4, "connection_error", None),  # no pod
        (5, 0.1, 0.6, "truncated", "new-b"),  # a pod that never got SIGTERM
        (6, 1.0, 1.0, "connection_error", "old-a"),  # opened exactly at SIGTERM: after it
        (7, 2.2, 2.7, "truncated", "old-h"),  # after the deletion, before SIGTERM: cut
        (8, 2.7, 2.7, "http_error", "old-h"),  # after SIGTERM (not after the deletion)
        (9, 1.5, 1.9, "ok", "old-h"),  # ok requests stay out, whatever their times
        (10, 1.8, 2.1, "truncated", "old-h"),  # failed before its pod's SIGTERM: other
        (11, 4.6, 5.2, "truncated", "old-k"),  # opened after SIGTERM, ended after SIGKILL
        (12, 4.2, 5.0, "connection_error", "old-k"),  # ended exactly at SIGKILL: killed
        (13, 3.9, 4.5, "http_error", "old-k"),  # an error status, in flight at SIGTERM: cut
        (14, 4.4, 4.9, "truncated", "gone-z"),  # a pod the table does not know
        (15, 2.9, 3.3, "connection_error", "old-h"),  # after the exit: after SIGTERM
    ]
    requests = [RequestRecord(i, 0, s, e, st, backend=b) for i, s, e, st, b in rows]
    return requests, pods


def _generated(seed: int, n_pods: int = 5, n_requests: int = 160):
    """A random rollout of this seed: timings and outcomes drawn so every cause occurs."""
    rng = random.Random(f"lab299-grading-{seed}")
    pods = {}
    for i in range(n_pods):
        name = f"llm-{seed}-{i}"
        if i == n_pods - 1:
            pods[name] = PodLifecycle(name, "new", created_s=rng.uniform(0, 2))
            continue
        deleted = rng.uniform(1, 8)
        hook = rng.choice([0.0, 0.0, rng.uniform(0.2, 1.0)])
        term = deleted + hook
        kill = term + rng.uniform(0.2, 1.0) if i % 2 == 0 else None
        pods[name] = PodLifecycle(
            name,
            "old",
            deleted_s=deleted,
            pre_stop_s=deleted if hook else None,
            sigterm_s=round(term, 3),
            sigkill_s=None if kill is None else round(kill, 3),
        )
    old = [n for n, p in pods.items() if p.revision == "old"]
    names = [*old, *old, *old, *pods, None, "gone-x"]
    statuses = ["ok", "ok", "truncated", "http_error", "connection_error", "timeout"]
    requests = []
    for i in range(n_requests):
        backend = rng.choice(names)
        pod = pods.get(backend) if backend is not None else None
        anchor = pod.sigterm_s if pod is not None and pod.sigterm_s is not None else 5.0
        start = anchor + rng.uniform(-2.0, 1.0)
        end = start + (0.0 if rng.random() < 0.25 else rng.uniform(0, 3.0))
        requests.append(
            RequestRecord(
                i, i % 6, round(start, 3), round(end, 3), rng.choice(statuses), backend=backend
            )
        )
    return requests, pods


def _compare(got, want, what: str) -> None:
    assert isinstance(got, dict), f"return a dict {{request index: cause}}, got {type(got)}"
    missing = sorted(set(want) - set(got))
    assert not missing, (
        f"{what}: no cause for failed request(s) {missing[:5]}: give every request whose "
        "status is not 'ok' one cause"
    )
    extra = sorted(set(got) - set(want))
    assert not extra, f"{what}: request(s) {extra[:5]} did not fail (status 'ok'): leave them out"
    unknown = sorted({c for c in got.values() if c not in truth.CAUSES}, key=str)
    assert not unknown, f"{what}: unknown cause(s) {unknown[:3]}: use one of {truth.CAUSES}"
    wrong = [i for i in want if got[i] != want[i]]
    assert not wrong, (
        f"{what}: {len(wrong)} of {len(want)} failed requests attributed differently from the "
        f"event log, e.g. request {wrong[0]}: you said {got[wrong[0]]!r}, the lifecycle of its "
        f"pod says {want[wrong[0]]!r}. Compare its start_s and end_s with its pod's sigterm_s "
        "and sigkill_s, as the docstring defines each cause"
    )


def production_run(seed: int):
    """The variant's production rollout, measured once per session (a second try with other
    answer lengths if a run happened to lose nothing, which grades nothing)."""
    key = (seed, "production")
    if key not in _RUNS:
        v = variant(seed)
        run = load.run_rollout(v.production, variant=v, arm="production")
        if not run.failed:
            run = load.run_rollout(
                v.production, variant=v, arm="production", load=LoadConfig.of(v, seed + 1000)
            )
        _RUNS[key] = run
    return _RUNS[key]


@pytest.mark.diagnosis
@pytest.mark.timeout(150)
def test_failure_causes_match_the_event_log(lab, seed):
    """failure_causes agrees with the pods' lifecycles: made-up, generated and real rollouts."""
    requests, pods = _made_up()
    _compare(lab.failure_causes(requests, pods), truth.failure_causes(requests, pods), "made-up")
    for k in range(2):
        requests, pods = _generated(seed * 10 + k)
        want = truth.failure_causes(requests, pods)
        assert set(want.values()) == set(truth.CAUSES), "the generated rollout lacks a cause"
        _compare(lab.failure_causes(requests, pods), want, f"generated rollout {k + 1}")
    run = production_run(seed)
    want = truth.failure_causes(run.requests, run.pods)
    assert want, "the production rollout lost nothing twice in a row: run the check again"
    got = lab.failure_causes(list(run.requests), dict(run.pods))
    _compare(got, want, f"the production rollout of variant {seed}")


# ---- fix: the handler -----------------------------------------------------------------------
def handler_problems(lab) -> list[str]:
    """The handler's trial on the simulated server, run contained, judged here; once per
    submission (keyed by the cells' text)."""
    ref = lab.ref("on_sigterm")
    key = hashlib.sha256(ref.source.encode()).hexdigest()
    if key not in _TRIALS:
        r = isolate.run_function(
            "labsupport.scenarios.errors_during_rollout.handler_trial:run_trials",
            ref,
            timeout_s=40,
        )
        if not r.ok:
            _TRIALS[key] = [f"the trial of your handler failed: {r.error}"]
        else:
            trials = r.value
            # cross-check from outside: the three trials cannot have taken longer than the
            # process that ran them
            reported = sum(t.returned_s or 0.0 for t in trials)
            if reported > r.duration_s + 0.5:
                _TRIALS[key] = ["the trial's timings do not add up: leave the clocks alone"]
            else:
                _TRIALS[key] = handler_trial.judge(trials)
    return _TRIALS[key]


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_handler_finishes_streams_within_its_budget(lab):
    """on_sigterm stops accepting, lets in-flight streams finish, respects the budget, and
    returns as soon as nothing is in flight (a simulated server, three scenarios)."""
    problems = handler_problems(lab)
    assert not problems, "your on_sigterm: " + "; ".join(problems)


# ---- fix: the manifest ----------------------------------------------------------------------
def manifest_cases(seed: int) -> list[tuple[str, dict]]:
    """This variant's cluster first, then three built to separate the sizing from near
    misses: a fractional propagation, no GPU to spare with production's own budget and
    short grace in the args, two spare GPUs and short answers."""
    v = variant(seed)
    return [
        (
            f"variant {seed}",
            dict(
                production=v.production,
                propagation_s=v.propagation_s,
                longest_answer_s=v.longest_answer_s,
                node_gpus=v.node_gpus,
            ),
        ),
        (
            "3 replicas, 4 GPUs, propagation 2.4 s, answers up to 25 s",
            dict(
                production=production_manifest(3, spare_gpus=1),
                propagation_s=2.4,
                longest_answer_s=25,
                node_gpus=4,
            ),
        ),
        (
            "2 replicas, 2 GPUs, production with --shutdown-timeout 30 and a 5 s grace, "
            "propagation 6 s, answers up to 45 s",
            dict(
                production=production_manifest(2, spare_gpus=0, server_budget_s=30, grace_s=5),
                propagation_s=6.0,
                longest_answer_s=45,
                node_gpus=2,
            ),
        ),
        (
            "2 replicas, 4 GPUs, propagation 1.5 s, answers up to 12 s",
            dict(
                production=production_manifest(2, spare_gpus=2),
                propagation_s=1.5,
                longest_answer_s=12,
                node_gpus=4,
            ),
        ),
    ]


def _manifest_for(lab, case: dict):
    manifest = lab.fixed_manifest(
        case["production"], case["propagation_s"], case["longest_answer_s"], case["node_gpus"]
    )
    assert isinstance(manifest, (str, dict)), (
        f"return the Deployment as YAML text, got {type(manifest).__name__}"
    )
    return manifest


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_manifest_fits_each_cluster(lab, seed):
    """fixed_manifest passes the Kubernetes schema and sizes preStop, budget, grace and
    strategy for this variant's cluster and three others, neither too short nor too long."""
    for label, case in manifest_cases(seed):
        problems = truth.sizing_problems(_manifest_for(lab, case), **case)
        assert not problems, f"your manifest for {label}: " + "; ".join(problems)


# ---- fix: the rollout -----------------------------------------------------------------------
@pytest.mark.fix
@pytest.mark.timeout(150)
def test_rollout_under_load_loses_nothing(lab, seed):
    """A rollout with your handler and manifest under streaming load: nothing failed, no
    SIGKILL, every old process exited 0, capacity as the strategy promises."""
    label, case = manifest_cases(seed)[0]
    manifest = _manifest_for(lab, case)
    problems = truth.sizing_problems(manifest, **case)
    assert not problems, f"fix the manifest first ({label}): " + problems[0]
    problems = handler_problems(lab)
    assert not problems, "fix on_sigterm first: " + problems[0]
    v = variant(seed)
    run = load.run_rollout(
        manifest, lab.ref("on_sigterm"), variant=v, arm="your fix", load=LoadConfig.of(v, seed + 3)
    )
    assert run.succeeded, f"the rollout did not complete: {run.reason}"
    assert len(run.requests) >= 20, f"only {len(run.requests)} requests ran: the load stalled"
    causes = truth.failure_causes(run.requests, run.pods)
    counts = {c: list(causes.values()).count(c) for c in truth.CAUSES if c in causes.values()}
    assert not run.failed, (
        f"{len(run.failed)} of {len(run.requests)} requests failed or were truncated "
        f"({run.by_status}; causes {counts}): " + "; ".join(ADVICE[c] for c in counts)
    )
    old = [p for p in run.pods.values() if p.revision == "old"]
    assert len(old) == v.replicas and all(p.sigterm_s is not None for p in old), (
        "not every old pod was stopped: the rollout did not replace them all"
    )
    killed = [p.name for p in old if p.sigkill_s is not None]
    assert not killed, (
        f"{len(killed)} old pod(s) were SIGKILLed at the end of the grace period although no "
        "request failed: does on_sigterm return once nothing is in flight?"
    )
    codes = {p.name: p.exit_code for p in old if p.exit_code != 0}
    assert not codes, f"old pods exited with {codes}: the server should exit cleanly"
    floor = v.replicas - run.settings["max_unavailable"]
    assert run.min_available >= floor, (
        f"only {run.min_available} pod(s) were available during the rollout, fewer than the "
        f"{floor} your strategy promises"
    )
