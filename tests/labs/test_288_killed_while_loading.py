"""Checks of lab 288 (killed while loading): the measured start, the manifest, the pod.

Diagnosis: the learner's slowest start is compared, first, with written evidence whose answer
is known (`truth.cases(seed)`: read from the wrong clock, the wrong line or the wrong start it
gives another number, and the hint says which), then with the truth measured beside real
starts of two small servers the variant picks (the moment each port accepted a TCP
connection), so a constant or a formula that only fits one input fails. Fix: the manifest
must be a valid Pod with startup, liveness and readiness probes; its startup budget must
follow the load time it is given, from both sides (at least 1.5x, at most max(5x, +300 s): a
stuck start must still be restarted), probe often enough, and leave liveness short enough to
catch a hang right after a start. Then, under the lab's kubelet with the variant's real slow
server, the pod must get ready without a restart and liveness must restart it when it hangs
later (the variant says when), so dropping liveness, delaying it past the start or making it
never fire fails. Everything a check measures is measured once per session and seed.
"""

from __future__ import annotations

import math

import pytest

from labsupport.k8s import manifests
from labsupport.scenarios import killed_while_loading as scenario
from labsupport.scenarios.killed_while_loading import pods, starts
from tests.labs.truth import killed_while_loading as truth

_CACHE: dict = {}


def _as_seconds(value, name: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    assert ok, f"{name} must return a finite number of seconds, got {value!r}"
    return float(value)


def _measured(seed: int, which: str = "graded") -> list[starts.StartRecord]:
    """Debug starts, once per session and seed: the variant's two small servers at once for
    the diagnosis (about 5 s), or its incident server alone to size the fix (about 6 s)."""
    key = (which, seed)
    if key not in _CACHE:
        v = scenario.variant(seed)
        sizes = v.graded_sizes() if which == "graded" else [v.server]
        try:
            _CACHE[key] = starts.debug_starts(sizes)
        except RuntimeError as exc:
            pytest.fail(f"the model server did not start (not your code): {exc}", pytrace=False)
    return _CACHE[key]


def _which_miss(got: float, evidence: list[dict], want: float, tolerance: float) -> str:
    for name, value in truth.near_misses(evidence).items():
        if abs(value - want) > 2 * tolerance and abs(got - value) <= tolerance:
            return f" That is {name}."
    return ""


@pytest.mark.diagnosis
@pytest.mark.timeout(90)
def test_slowest_start_matches_the_evidence_and_the_measured_starts(lab, seed):
    """slowest_start_s finds the slowest start, startedAt to serving: written and real starts."""
    got = _as_seconds(lab.slowest_start_s([truth.HAND_MADE]), "slowest_start_s")
    assert abs(got - truth.HANDMADE_S) <= truth.EXACT_S, (
        f"a container that started at 14:02:11.5 and whose server listens from 14:02:16.140 "
        f"took {truth.HANDMADE_S} s; you returned {got:.3f} s."
        + _which_miss(got, [truth.HAND_MADE], truth.HANDMADE_S, truth.EXACT_S)
        + " Count from the container's startedAt to the line that says the server listens"
    )
    for label, evidence in truth.cases(seed).items():
        want = truth.slowest_start_s(evidence)
        got = _as_seconds(lab.slowest_start_s(evidence), "slowest_start_s")
        assert abs(got - want) <= truth.EXACT_S, (
            f"{label}: you returned {got:.3f} s, the slowest start took {want:.3f} s."
            + _which_miss(got, evidence, want, truth.EXACT_S)
            + " Per start, from startedAt to the 'listening on' line (timestamps carry nine "
            "fractional digits, and dates change at midnight); then the largest"
        )
    records = _measured(seed)
    groups = {"the two debug starts": records}
    groups.update({f"the {s.size.weights_mb:g} MB server's start alone": [s] for s in records})
    for label, group in groups.items():
        want = max(s.port_open_s for s in group)
        evidence = [s.evidence() for s in group]
        got = _as_seconds(lab.slowest_start_s(evidence), "slowest_start_s")
        assert abs(got - want) <= truth.TOLERANCE_S, (
            f"{label} (real starts of this run): you returned {got:.2f} s, the slowest port "
            f"really opened {want:.2f} s after its container started."
            + _which_miss(got, evidence, want, truth.TOLERANCE_S)
            + " Measure each start from startedAt to the line that says the server listens"
        )


def _manifest(lab, load_s: float) -> str:
    text = lab.fixed_manifest(load_s)
    assert isinstance(text, str) and text.strip(), (
        f"fixed_manifest({load_s:g}) must return the manifest as a YAML string, "
        f"got {type(text).__name__}"
    )
    try:
        obj = manifests.validate(text)
    except manifests.ManifestError as exc:
        pytest.fail(
            f"fixed_manifest({load_s:g}) is not a valid Kubernetes manifest:\n"
            + "\n".join(f"  - {e}" for e in exc.errors),
            pytrace=False,
        )
    assert obj["kind"] == "Pod", f"return a v1 Pod like the incident's, not a {obj['kind']}"
    assert obj["spec"]["containers"][0].get("ports"), (
        "declare the container's port (containerPort 8000, named http) as the incident's "
        "manifest does: the probes and $(PORT) need it"
    )
    return text


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_fixed_manifest_has_startup_liveness_and_readiness_probes(lab):
    """fixed_manifest returns a valid Pod with a startupProbe, a livenessProbe and readiness."""
    for load in (45.0, 600.0):
        text = _manifest(lab, load)
        assert truth.probe(text, "startupProbe") is not None, (
            f"fixed_manifest({load:g}) has no startupProbe: which probe holds liveness and "
            "readiness back until its first success, and only then?"
        )
        assert truth.probe(text, "livenessProbe") is not None, (
            f"fixed_manifest({load:g}) has no livenessProbe: without one, a server that hangs "
            "after it started is never restarted"
        )
        assert truth.probe(text, "readinessProbe") is not None, (
            f"fixed_manifest({load:g}) dropped the readiness probe: keep it, it takes a pod "
            "that cannot serve out of the Service"
        )


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_startup_budget_follows_the_load_time_from_both_sides(lab, seed):
    """The startup budget is at least 1.5x the load and at most max(5x, +300 s); it probes
    at least every 10 s and waits no longer than the load before its first probe."""
    _manifest(lab, 45.0)  # a stub or an invalid manifest fails here, before anything else
    for load in truth.static_loads(seed):
        text = _manifest(lab, load)
        start = truth.probe(text, "startupProbe")
        assert start is not None, f"fixed_manifest({load:g}) has no startupProbe"
        budget = truth.startup_budget_s(text)
        least, most = truth.budget_bounds(load)
        assert budget >= least, (
            f"for a load of {load:g} s your startupProbe allows {budget:g} s "
            "(initialDelaySeconds + failureThreshold x periodSeconds): budget for the slowest "
            f"start with a margin, at least {truth.MIN_MARGIN:g}x: starts get slower on a busy "
            "node, with a cold cache, with the next model"
        )
        assert budget <= most, (
            f"for a load of {load:g} s your startupProbe allows {budget:g} s: a start that is "
            "stuck (a hung download, a deadlock in start-up) would not be restarted for that "
            f"long. Size it from the load time you are given (at most {most:g} s here)"
        )
        assert start["periodSeconds"] <= truth.MAX_STARTUP_PERIOD_S, (
            f"your startupProbe probes every {start['periodSeconds']} s: a server that is up "
            "waits up to a period for its first success. Probe every "
            f"{truth.MAX_STARTUP_PERIOD_S:g} s or more often; failureThreshold makes the budget"
        )
        assert start["initialDelaySeconds"] <= load, (
            f"for a load of {load:g} s your startupProbe waits initialDelaySeconds: "
            f"{start['initialDelaySeconds']} before its first probe: every start, even a fast "
            "one, waits that long. Let failureThreshold make the budget"
        )


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_liveness_stays_short_after_the_start(lab, seed):
    """Liveness could restart a server that hangs right after its start within 60 cluster s."""
    _manifest(lab, 45.0)
    for load in truth.static_loads(seed):
        text = _manifest(lab, load)
        worst = truth.hang_detection_s(text, load)
        assert worst <= truth.HANG_BOUND_S, (
            f"with fixed_manifest({load:g}), a server that hangs right after its start would "
            f"be restarted after up to {worst:g} cluster s (need at most "
            f"{truth.HANG_BOUND_S:g}). " + _liveness_hint(text, load)
        )


def _fixed_run(lab, seed: int) -> tuple[pods.PodRun, float, str]:
    """The learner's manifest under the kubelet with the variant's server, then a hang.

    Run once per session, seed and manifest; a run that lost to the machine (the start took
    longer than a budget sized by the rule) is run once more with a fresh measurement.
    """
    _manifest(lab, 45.0)  # fail fast, before any workload, on a stub or an invalid manifest
    v = scenario.variant(seed)
    load = _measured(seed, "incident")[0].port_open_s / starts.TIME_SCALE
    text = _manifest(lab, load)
    key = ("run", seed, text)
    if key in _CACHE:
        return _CACHE[key]
    for attempt in range(2):
        if attempt:
            load = starts.debug_start(v.server).port_open_s / starts.TIME_SCALE
            text = _manifest(lab, load)
        budget = min(truth.startup_budget_s(text), 500.0)  # a huge budget: 60 s will do
        run = pods.run_pod(
            text,
            v.server,
            window_s=min(60.0, budget * starts.TIME_SCALE + 10.0),
            hang_after_ready_s=v.hang_after_ready_s,
            hang_timeout_s=(truth.HANG_BOUND_S + 20) * starts.TIME_SCALE,
        )
        # still loading when a budget sized by the rule ran out: the machine, not the manifest
        starved = [c for c in run.containers if c.killed_by == "startup" and not c.port_open_s]
        if not (starved and truth.startup_budget_s(text) >= truth.MIN_MARGIN * load):
            break
    _CACHE[key] = (run, load, text)
    return run, load, text


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_fixed_pod_gets_ready_without_restarts(lab, seed):
    """With fixed_manifest(measured load), the slow server gets ready with zero restarts."""
    run, load, text = _fixed_run(lab, seed)
    if run.ready_s is not None and run.restarts_before_ready == 0:
        return
    what = (
        f"the start took about {load:.0f} cluster seconds and your startupProbe allows "
        f"{truth.startup_budget_s(text):g}; the pod had {run.restart_count} restart(s) and "
        + ("never got ready" if run.ready_s is None else "got ready only after them")
    )
    killed = next((c for c in run.containers if c.killed_by), None)
    if killed is None:
        why = (
            "no probe killed it, but it never became ready: do its startup and readiness "
            "probes ask the right path and port?"
        )
    elif killed.killed_by == "liveness":
        why = (
            "liveness killed it: the startupProbe must hold liveness back until the server "
            "really serves (its first success)"
        )
    elif killed.port_open_s is not None:
        why = (
            "the startup probe kept failing although the server was listening: check its "
            "handler (path, port)"
        )
    else:
        why = "the startup probe gave up while the server was still loading: budget more"
    pytest.fail(f"{what}; {why}.", pytrace=False)


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_liveness_still_catches_a_later_hang(lab, seed):
    """Once the pod serves, a blocked event loop is caught by liveness within 60 cluster s."""
    run, load, text = _fixed_run(lab, seed)
    assert run.ready_s is not None and run.hang_s is not None, (
        "the pod never got ready (or restarted before the hang), so no hang could be "
        "injected: see the check above"
    )
    caught = run.hang_detected_seconds
    waited = (run.window_s - run.hang_s) / run.time_scale
    assert caught is not None and caught <= truth.HANG_BOUND_S, (
        "once the pod was ready the server's event loop was blocked (/health stopped "
        "answering; the process and its port stayed up); liveness "
        + (
            f"took {caught:.0f} cluster seconds to restart it"
            if caught is not None
            else f"had not restarted it after {waited:.0f} cluster seconds"
        )
        + f" (need at most {truth.HANG_BOUND_S:g}). "
        + _liveness_hint(text, load)
    )


def _liveness_hint(text: str, load_s: float) -> str:
    live = truth.probe(text, "livenessProbe")
    if live is None:
        return "Your manifest has no livenessProbe."
    if "httpGet" not in live:
        return (
            "Your livenessProbe does not ask the server over HTTP: a tcpSocket probe still "
            "connects while the server hangs (the kernel accepts the connection), an exec "
            "probe asks something else. Probe /health."
        )
    if live["initialDelaySeconds"] > load_s:
        return (
            f"Your livenessProbe waits initialDelaySeconds: {live['initialDelaySeconds']} after "
            "the container starts: the startupProbe already holds liveness back during the "
            "load, so liveness needs no initial delay."
        )
    failing = max(live["periodSeconds"], live["timeoutSeconds"]) * live["failureThreshold"]
    return (
        f"Your livenessProbe needs {failing:g} s of failures (periodSeconds x failureThreshold) "
        "before a restart: keep it short (the incident's 10 s x 3 was right); the startupProbe "
        "covers the load."
    )
