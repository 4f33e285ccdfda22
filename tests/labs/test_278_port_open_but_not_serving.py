"""Checks of lab 278 (the port answers but nothing is served): the diagnosis and the probes.

Diagnosis: the learner's `diagnose` names what stopped, with the step count and the runnable
cores it read, on evidence written by hand (each case built against a usual near miss) and on
evidence gathered from the variant's live servers: idle, at the daily peak, and with each of the
three faults (truth: what was set up; the reference reading must agree, or the run is unfair).
Fix: the probe logic on scrape pairs written by hand, the manifest and the gateway limit
against the variant's bounds, then the real thing: the learner's `liveness` and `readiness`
served by the server itself as /livez and /readyz (contained), probed over HTTP by the lab's
kubelet with the manifest's probes, through idle, light, peak and storm traffic behind the
learner's gateway limit, then each fault. The runs are shared by the checks of one session
(keyed by the learner's code and the seed). Every check first calls the learner's functions on a
made-up input in the submission process, so an unwritten exercise fails before any workload.
"""

from __future__ import annotations

import concurrent.futures
import hashlib

import pytest

from labsupport.k8s import manifests
from labsupport.scenarios import port_open_but_not_serving as scenario
from labsupport.scenarios.port_open_but_not_serving import matrix, probesets, runs
from labsupport.scenarios.port_open_but_not_serving.timeline import FAULTS, LABELS
from labsupport.serving.scrape import synthetic
from tests.labs.truth import port_open_but_not_serving as truth

LIVE_SITUATIONS = ("idle", "heavy_load", "wedged_engine", "gil_busy_loop", "blocked_event_loop")
WINDOW_MARGIN_S = 5.0  # real seconds on top of the variant's restart SLO (scaled)


def _try(fn, name: str, *args):
    """Call a learner function once; fail now if it is not written yet."""
    try:
        return fn(*args)
    except NotImplementedError as exc:
        pytest.fail(f"{name}: not implemented yet - {exc}", pytrace=False)
    except Exception:  # judged below, with a better hint
        return None


def _first_case(seed):
    return next(iter(truth.made_up_evidence(seed).values()))


# ---- diagnosis -----------------------------------------------------------------------------
@pytest.mark.diagnosis
@pytest.mark.timeout(60)
def test_diagnosis_reads_written_evidence(lab, seed):
    """diagnose names what stopped, with steps and runnable cores, on evidence written by hand."""
    _try(lab.diagnose, "diagnose", _first_case(seed))
    for what, ev in truth.made_up_evidence(seed).items():
        problem = truth.answer_problem(lab.diagnose(ev), ev)
        assert problem is None, f"evidence '{what}': {problem}"


_EVIDENCE: dict = {}


def _live_evidence(seed: int) -> dict:
    """One gathering per seed: it does not depend on the learner's code."""
    if seed not in _EVIDENCE:
        v = scenario.variant(seed)
        _EVIDENCE[seed] = matrix.run_matrix(v, LIVE_SITUATIONS, ticks=3).evidence
    return _EVIDENCE[seed]


@pytest.mark.diagnosis
@pytest.mark.timeout(150)
def test_diagnosis_reads_live_servers(lab, seed):
    """diagnose is right on evidence from live servers: idle, at the peak, and each fault."""
    _try(lab.diagnose, "diagnose", _first_case(seed))
    for situation, ev in _live_evidence(seed).items():
        want = truth.TRUTH_OF[situation]
        seen = truth.diagnosis(ev)["cause"]
        assert seen == want, (
            f"the evidence of '{matrix.LABELS[situation]}' did not show it (read as {seen}): the "
            "machine stalled the server; run the check again"
        )
        problem = truth.answer_problem(lab.diagnose(ev), ev)
        assert problem is None, (
            f"live server, {matrix.LABELS[situation]}: {problem}. Print evidence.table() of a "
            "situation and compare what answered, what moved and what the process wanted"
        )


# ---- the fix, on paper ---------------------------------------------------------------------
def _call_probes(lab):
    idle = synthetic(120, 0, 0, t_s=1.0)
    _try(lab.liveness, "liveness", None, idle)
    _try(lab.readiness, "readiness", None, idle)


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_probe_logic_on_written_scrapes(lab, seed):
    """liveness fails only when a restart cures it; readiness when the pod cannot serve."""
    _call_probes(lab)
    for what, previous, current, live, ready in truth.probe_cases(seed):
        for name, want in (("liveness", live), ("readiness", ready)):
            if want is None:
                continue
            got = getattr(lab, name)(previous, current)
            assert got is want, (
                f"{name} on two scrapes a probe apart, '{what}': returned {got!r}, should be "
                f"{want}. "
                + (
                    "Overload is shed at the gateway: readiness that drops every equally loaded "
                    "replica at once empties the Service"
                    if "storm" in what or "peak" in what
                    else "Stuck means: work pending at both probes, and no step in between"
                )
            )


def _manifest(lab, stall_s: int, restart_within_s: int) -> dict:
    text = _try(lab.pod_manifest, "pod_manifest", stall_s, restart_within_s)
    assert isinstance(text, str), f"pod_manifest() must return the YAML text, not {text!r:.60}"
    try:
        obj = manifests.validate(text)
    except manifests.ManifestError as exc:
        pytest.fail(
            f"for stall_s={stall_s}, restart_within_s={restart_within_s}, the manifest is not "
            f"valid Kubernetes: {exc}",
            pytrace=False,
        )
    return obj


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_manifest_serves_the_probes_within_the_slos(lab, seed):
    """httpGet /livez and /readyz, a liveness window between the longest stall and the SLO."""
    for stall_s, within_s in truth.slos(seed):
        problems = truth.manifest_problems(_manifest(lab, stall_s, within_s), stall_s, within_s)
        assert not problems, f"pod_manifest({stall_s}, {within_s}): " + "; ".join(problems)


@pytest.mark.fix
@pytest.mark.timeout(30)
def test_gateway_limit_admits_the_peak_and_bounds_the_queue(lab, seed):
    """The admission limit per replica lets the daily peak through and sheds a retry storm."""
    _try(lab.gateway_limit, "gateway_limit", *truth.sizes(seed)[0])
    for capacity, peak in truth.sizes(seed):
        limit = lab.gateway_limit(capacity, peak)
        assert isinstance(limit, int) and not isinstance(limit, bool), (
            f"gateway_limit() must return an int (requests in flight per replica), "
            f"not {limit!r:.40}"
        )
        lo, hi = truth.gateway_bounds(capacity, peak)
        where = f"gateway_limit({capacity}, {peak}) = {limit}"
        assert limit >= lo, (
            f"{where}: the daily peak puts {peak} requests on a replica, and a healthy peak must "
            "not be answered 429"
        )
        assert limit <= hi, (
            f"{where}: for a server that runs {capacity} at once, an admitted request waits "
            f"behind {limit - capacity} others; keep at most two batches waiting"
        )


# ---- the fix, for real ---------------------------------------------------------------------
_RUNS: dict = {}


def _design(lab, seed):
    """The learner's pod design: manifest probes, their logic in the server, their gateway."""
    _call_probes(lab)
    v = scenario.variant(seed)
    limit = _try(lab.gateway_limit, "gateway_limit", v.capacity, v.peak)
    obj = _manifest(lab, v.stall_s, v.restart_within_s)
    probes = probesets.from_manifest(obj).with_handlers(
        livez=lab.ref("liveness"), readyz=lab.ref("readiness")
    )
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
    key = hashlib.sha256(f"{lab.source}\n{seed}".encode()).hexdigest()
    return key, probes, limit


def _window_s(seed) -> float:
    return scenario.variant(seed).restart_within_s * probesets.TIMING.time_scale + WINDOW_MARGIN_S


def _loads(lab, seed) -> runs.PodRun:
    """Idle, light, peak, storm, then the engine stalls: one pod, shared by four checks."""
    key, probes, limit = _design(lab, seed)
    if (key, "loads") not in _RUNS:
        v = scenario.variant(seed)
        _RUNS[key, "loads"] = runs.run_loads(
            probes,
            v,
            gateway_limit=limit,
            then_fault="wedged_engine",
            window_s=_window_s(seed),
            scale="check",
        )
    run = _RUNS[key, "loads"]
    _ready(run)
    return run


def _fault_run(lab, seed, fault) -> runs.PodRun:
    """The faults that stay on, each on its own pod, both at once (their probes time out)."""
    key, probes, _ = _design(lab, seed)
    if (key, fault) not in _RUNS:
        v = scenario.variant(seed)
        others = ("gil_busy_loop", "blocked_event_loop")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            jobs = {
                f: pool.submit(runs.run_fault, f, probes, v, window_s=_window_s(seed))
                for f in others
            }
            for f, job in jobs.items():
                _RUNS[key, f] = job.result()
    run = _RUNS[key, fault]
    _ready(run)
    return run


def _ready(run: runs.PodRun) -> None:
    assert not run.never_ready, (
        "the pod never became Ready on an idle, healthy server: with nothing pending "
        "/readyz must answer 200 (and /livez too, or the pod restarts); "
        + (run.unhealthy[-1][2] if run.unhealthy else "no probe failure was recorded")
    )


@pytest.mark.fix
@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", FAULTS)
def test_liveness_restarts_a_stuck_server(lab, seed, fault):
    """/livez fails, and the kubelet restarts the pod within the SLO, whatever part is stuck."""
    run = _loads(lab, seed) if fault == "wedged_engine" else _fault_run(lab, seed, fault)
    verdict = run.verdicts.get(fault)
    assert verdict is not None, "the fault was never switched on: the pod was not Ready"
    assert verdict.handled, (
        f"{LABELS[fault]}: {verdict.what}. What does /livez see when nothing in the process can "
        "run, and when the engine is stuck with requests pending?"
    )


@pytest.mark.fix
@pytest.mark.timeout(180)
def test_healthy_and_peak_traffic_keep_the_pod_ready(lab, seed):
    """Idle, light and peak traffic: always Ready, never restarted, nothing shed."""
    run = _loads(lab, seed)
    v = scenario.variant(seed)
    for scenario_ in ("healthy", "heavy_load"):
        verdict = run.verdicts[scenario_]
        assert verdict.handled, (
            f"{LABELS[scenario_]} ({v.peak} clients at the peak for {v.capacity} slots, every "
            f"request served): {verdict.what}. Every replica sees the same traffic: a probe "
            "that fails here takes all of them out at once"
        )


@pytest.mark.fix
@pytest.mark.timeout(180)
def test_retry_storm_is_shed_at_the_gateway_not_by_readiness(lab, seed):
    """A retry storm: the pod stays Ready and alive, the gateway sheds, admitted work is served."""
    run = _loads(lab, seed)
    verdict = run.verdicts["overload"]
    assert verdict.handled, (
        f"{LABELS['overload']}: {verdict.what}. Readiness is for 'cannot serve'; the gateway "
        "limit is for 'too much'"
    )


@pytest.mark.fix
@pytest.mark.timeout(180)
def test_readiness_takes_a_stalled_pod_out_before_it_is_restarted(lab, seed):
    """When the engine stalls, /readyz takes the pod out of the Service before /livez kills it."""
    run = _loads(lab, seed)
    t_fault, t_end = run.phases.get("fault", (None, None))
    assert t_fault is not None, "the engine was never stalled: the storm phase did not end"
    kills = [t for t, kind in run.kills if t >= t_fault]
    until = kills[0] if kills else t_end
    out = [t for t, ready in run.ready if not ready and t_fault <= t <= until]
    assert out, (
        "the engine stalled with requests pending and the pod stayed in the Service until "
        + ("it was restarted" if kills else "the end")
        + ": readiness should fail when the pod cannot serve, sooner than liveness kills it"
    )
