"""Checks of lab 299 (errors during every rollout): diagnosis, drain handler, manifest, rollout.

Every rollout here is a real one (labsupport.k8s.rollout_load: real server processes, signals,
balancer, streaming clients). Ground truth for the diagnosis is computed here from the pods'
lifecycles of rollouts made in the same check, with two configurations that fail for
different reasons. The fix is judged by a rollout under load with the learner's handler (in the
server processes) and manifest: zero failed or truncated requests, no SIGKILL.
"""

import pytest

from labsupport.k8s import handler_trial, rollout_load, rollout_settings
from labsupport.k8s.rollout_load import LoadConfig, PodLifecycle
from labsupport.k8s.traffic import RequestRecord

CAUSES = ("sent_after_sigterm", "killed_at_deadline", "cut_at_sigterm", "other")
ADVICE = {
    "sent_after_sigterm": "requests still reached pods after their SIGTERM: the balancer "
    "had not yet learned of the endpoint removal (what covers the propagation?)",
    "killed_at_deadline": "streams were SIGKILLed at the end of the grace period (when "
    "does the grace period start counting?)",
    "cut_at_sigterm": "streams in flight at SIGTERM were cut (does the server drain?)",
    "other": "requests failed with no SIGTERM involved: look at the pods' logs",
}


def _truth(requests, pods) -> dict:
    causes = {}
    for r in requests:
        if r.status == "ok":
            continue
        pod = pods.get(r.backend)
        term = pod.sigterm_s if pod is not None else None
        kill = pod.sigkill_s if pod is not None else None
        if term is not None and r.start_s >= term:
            causes[r.index] = "sent_after_sigterm"
        elif term is not None and kill is not None and r.end_s >= kill:
            causes[r.index] = "killed_at_deadline"
        elif term is not None and r.end_s >= term:
            causes[r.index] = "cut_at_sigterm"
        else:
            causes[r.index] = "other"
    return causes


def _synthetic():
    """One pod with SIGTERM at 1.0 s and SIGKILL at 1.5 s; one failed request of each kind."""
    pods = {
        "old-a": PodLifecycle("old-a", "old", deleted_s=1.0, sigterm_s=1.0, sigkill_s=1.5),
        "new-b": PodLifecycle("new-b", "new", created_s=0.0),
    }
    rows = [
        (0, 0.2, 0.9, "ok", "old-a"),
        (1, 0.5, 1.01, "truncated", "old-a"),  # cut at SIGTERM
        (2, 1.2, 1.21, "http_error", "old-a"),  # sent after SIGTERM
        (3, 0.8, 1.52, "truncated", "old-a"),  # killed at the deadline
        (4, 0.3, 0.4, "connection_error", None),  # no pod
        (5, 0.1, 0.6, "truncated", "new-b"),  # a pod that never got SIGTERM
        (6, 1.0, 1.0, "connection_error", "old-a"),  # exactly at SIGTERM: after it
    ]
    requests = [RequestRecord(i, 0, s, e, st, backend=b) for i, s, e, st, b in rows]
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
    wrong = [i for i in want if got[i] != want[i]]
    assert not wrong, (
        f"{what}: {len(wrong)} of {len(want)} failed requests attributed differently from the "
        f"event log, e.g. request {wrong[0]}: you said {got[wrong[0]]!r}, the lifecycle of its "
        f"pod says {want[wrong[0]]!r}. Compare its start_s and end_s with its pod's sigterm_s "
        "and sigkill_s, in the order of the docstring"
    )


@pytest.mark.timeout(150)
def test_failure_causes_match_the_event_log(lab):
    """failure_causes agrees with the pods' lifecycles on a made-up case and on two rollouts."""
    requests, pods = _synthetic()
    _compare(lab.failure_causes(requests, pods), _truth(requests, pods), "made-up rollout")
    runs = [
        rollout_load.run_rollout(arm="default", load=LoadConfig(seed=1)),
        rollout_load.run_rollout(
            rollout_settings.manifest_with(drain_s=30, grace_s=2),
            arm="drain, no preStop, short grace",
            load=LoadConfig(seed=2),
        ),
    ]
    seen = set()
    for run in runs:
        want = _truth(run.requests, run.pods)
        got = lab.failure_causes(list(run.requests), dict(run.pods))
        _compare(got, want, f"rollout '{run.arm}'")
        seen |= set(want.values())
    assert len(seen) >= 2, f"the rollouts failed for one reason only ({seen}): run the check again"


@pytest.mark.timeout(60)
def test_handler_drains_on_a_simulated_server(lab):
    """on_sigterm stops accepting, lets in-flight streams finish, and respects the budget."""
    problems = handler_trial.handler_problems(lab.ref("on_sigterm"))
    assert not problems, "your on_sigterm: " + "; ".join(problems)


@pytest.mark.timeout(60)
def test_manifest_is_valid_and_sized(lab):
    """deployment_manifest passes the Kubernetes schema and sizes preStop, drain and grace."""
    manifest = lab.deployment_manifest()
    assert isinstance(manifest, (str, dict)), (
        f"return the Deployment as YAML text, got {type(manifest).__name__}"
    )
    problems = rollout_settings.sizing_problems(manifest)
    assert not problems, "your manifest: " + "; ".join(problems)


@pytest.mark.timeout(150)
def test_rollout_under_load_loses_nothing(lab):
    """A rollout with your handler and manifest under streaming load: 0 failed, 0 SIGKILL."""
    manifest = lab.deployment_manifest()
    problems = rollout_settings.sizing_problems(manifest)
    assert not problems, "fix the manifest first: " + problems[0]
    error = handler_trial.handler_error(lab.ref("on_sigterm"))
    assert error is None, f"your on_sigterm raised {error}"
    run = rollout_load.run_rollout(
        manifest, lab.ref("on_sigterm"), arm="your fix", load=LoadConfig(seed=3)
    )
    assert run.succeeded, f"the rollout did not complete: {run.reason}"
    assert len(run.requests) >= 20, f"only {len(run.requests)} requests ran: the load stalled"
    causes = _truth(run.requests, run.pods)
    counts = {c: list(causes.values()).count(c) for c in CAUSES if c in causes.values()}
    assert not run.failed, (
        f"{len(run.failed)} of {len(run.requests)} requests failed or were truncated "
        f"({run.by_status}; causes {counts}): " + "; ".join(ADVICE[c] for c in counts)
    )
    killed = [p.name for p in run.pods.values() if p.sigkill_s is not None]
    assert not killed, (
        f"{len(killed)} old pod(s) were SIGKILLed at the end of the grace period although no "
        "request failed: does on_sigterm return once nothing is in flight?"
    )
    assert run.min_available >= 2, "fewer than two pods were available during the rollout"
