"""Checks of lab 296 (memory bandwidth nobody sees): measure it, say what bounds, alert on it.

Diagnosis: `achieved_gbps` is compared with the reference on a written record built so that
the usual slips (bytes read only, GiB/s, one repetition) give other numbers, then on every
workload measured in this grading run. `diagnose` must name what bounds llm-serve's step (the
memory bandwidth, the arithmetic, or the cost of each call) with shares of the peaks measured
beside it, on written evidence of each kind and on this machine's measurements of llm-serve's
step of every kind (the variant's and the two others). Fix: `bandwidth_alert_rules` must watch
the bandwidth gauge and no utilisation, and, run in promtool over pools built from the H100
recording, page within 10 minutes for the GPU whose memory stays at its ceiling and never for
the GEMM, small copies, rest or 90-second model loads. Measurements run once per session.
"""

from __future__ import annotations

import math

import pytest

from labsupport.scenarios import bandwidth_blind_spot as scenario
from labsupport.scenarios.bandwidth_blind_spot import pool, runs
from labsupport.telemetry import promtool
from tests.labs.truth import bandwidth_blind_spot as truth

_CACHE: dict = {}


def _measured(workloads, device: str) -> dict:
    """name-by-workload measurements, each workload measured once per session and device."""
    missing = [w for w in workloads if (device, w) not in _CACHE]
    if missing:
        try:
            for w, m in zip(missing, runs.measure_workloads(missing, device), strict=True):
                _CACHE[(device, w)] = m
        except RuntimeError as exc:
            pytest.fail(f"the workloads did not run (not your code): {exc}", pytrace=False)
    return [_CACHE[(device, w)] for w in workloads]


def _evidence(seed: int) -> dict:
    """label -> evidence: this variant's measurements, and llm-serve's step of the two other
    kinds measured beside the same references (all in one process, once per session)."""
    device = runs.device_for()
    v = scenario.variant(seed)
    refs = v.workloads(device)[:-1]
    steps = {v.step: v.workloads(device)[-1]}
    for step in scenario.STEPS:
        other = scenario.variant(scenario.STEPS.index(step))
        steps.setdefault(step, scenario.service_workload(step, other.step_size, device))
    every = refs + list(steps.values())
    measured = dict(zip(every, _measured(every, device), strict=True))
    out = {}
    for step, work in steps.items():
        label = "this run's measurements" if step == v.step else "this machine, another step"
        ms = [measured[w] for w in refs + [work]]
        out[f"{label} ({truth.BOUND_OF_STEP[step]} at work)"] = runs.evidence(ms, device)
    return out


def _gbps(lab, run: dict) -> float:
    value = lab.achieved_gbps(dict(run))
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    assert ok, f"achieved_gbps must return a finite number of GB/s, got {value!r}"
    return float(value)


def _close(got: float, want: float) -> bool:
    return abs(got - want) <= truth.REL_TOLERANCE * abs(want) + 1e-12


@pytest.mark.diagnosis
@pytest.mark.timeout(120)
def test_achieved_gbps_counts_bytes_read_and_written(lab, seed):
    """achieved_gbps is (bytes read + bytes written) / seconds in GB/s, on a written record and
    on every workload measured in this run."""
    got = _gbps(lab, truth.HAND_MADE)
    want = truth.achieved_gbps(truth.HAND_MADE)
    if not _close(got, want):
        miss = [k for k, x in truth.near_misses(truth.HAND_MADE).items() if _close(got, x)]
        pytest.fail(
            f"a run that read 3.0 GB and wrote 1.0 GB in 2.0 s (4 repetitions) moved {want:g} "
            f"GB/s; you returned {got:.4g}."
            + (f" That is {miss[0]}." if miss else "")
            + " Count every byte the workload moved, both ways, in decimal GB",
            pytrace=False,
        )
    for label, ev in _evidence(seed).items():
        for name, run in ev["runs"].items():
            got, want = _gbps(lab, run), truth.achieved_gbps(run)
            assert _close(got, want), (
                f"{label}, {name}: you returned {got:.4g} GB/s, it moved {want:.4g} GB/s"
            )
        break  # the references and this variant's step; the other steps are the next check's


def _diagnosis(lab, evidence: dict, label: str) -> dict:
    got = lab.diagnose(evidence)
    assert isinstance(got, dict), f"diagnose() must return a dict, got {type(got).__name__}"
    missing = sorted(set(truth.diagnose(truth.WRITTEN["a matrix read once per step"])) - set(got))
    assert not missing, f"{label}: diagnose() left out {missing}"
    for key in ("achieved_gbps", "share_of_peak_bandwidth", "share_of_peak_flops"):
        value = got[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        assert ok and math.isfinite(value), f"{label}: diagnose()[{key!r}] must be a number"
    return got


@pytest.mark.diagnosis
@pytest.mark.timeout(150)
def test_diagnosis_names_what_bounds_the_step_with_measured_shares(lab, seed):
    """diagnose names the bound of llm-serve's step from its shares of the measured peaks, on
    written evidence and on this machine's measurements of a step of every kind."""
    written = {f"written evidence: {k}": e for k, e in truth.WRITTEN.items()}
    _diagnosis(lab, next(iter(written.values())), "written evidence")  # fail fast, no workload
    for label, ev in {**written, **_evidence(seed)}.items():
        want, got = truth.diagnose(ev), _diagnosis(lab, ev, label)
        for key, what in (
            ("achieved_gbps", "the step's GB/s"),
            ("share_of_peak_bandwidth", "its share of the best streaming copy's GB/s"),
            ("share_of_peak_flops", "its share of the GEMM's FLOP/s"),
        ):
            assert _close(float(got[key]), want[key]), (
                f"{label}: {key} = {float(got[key]):.4g}, {what} is {want[key]:.4g}. The peaks "
                "are the ones measured here: the best of the copy-* runs, and the gemm run"
            )
        assert got["bound"] == want["bound"], (
            f"{label}: your shares are right, but {got['bound']!r} is not what bounds this step "
            f"(bandwidth share {want['share_of_peak_bandwidth']:.2f}, FLOP/s share "
            f"{want['share_of_peak_flops']:.2f}). A step near the memory's ceiling is bound by "
            "it; one near the arithmetic's, by that; one near neither spends its time elsewhere"
        )


# ---- the fix ----------------------------------------------------------------------------------
def _rules(lab) -> str:
    text = lab.bandwidth_alert_rules()
    assert isinstance(text, str) and text.strip(), (
        "bandwidth_alert_rules() must return a Prometheus rule file (YAML text), got "
        f"{type(text).__name__}"
    )
    if not promtool.available():
        pytest.fail("promtool is not installed here (apt-get install prometheus)", pytrace=False)
    errors = promtool.check_rules(text)
    if errors:
        pytest.fail(
            "promtool rejects your rule file:\n" + "\n".join(f"  - {e}" for e in errors),
            pytrace=False,
        )
    return text


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_bandwidth_alert_watches_the_bandwidth_gauge(lab):
    """Every alert reads the DRAM bandwidth gauge, and none a utilisation."""
    alerts = truth.alert_metrics(_rules(lab))
    assert alerts, "the rule file has no alerting rule (`- alert: Name`)"
    for name, metrics in alerts.items():
        duty = sorted(metrics & set(truth.DUTY_CYCLES))
        assert not duty, (
            f"alert {name} reads {duty}: in the recorded H100 table, did that reading follow the "
            "bandwidth the copies achieved (3017 of 3352 GB/s)? What does NVML say it measures?"
        )
        assert truth.GAUGE in metrics, (
            f"alert {name} reads {sorted(metrics) or 'no DCGM metric'}: which DCGM field is the "
            "copies' achieved share of the card's theoretical bandwidth?"
        )


def _score(lab, seed: int):
    text = _rules(lab)
    key = ("score", seed, text)
    if key not in _CACHE:
        _CACHE[key] = pool.score(text, truth.fix_pools(seed))
    return _CACHE[key]


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_bandwidth_alert_pages_when_memory_stays_at_its_ceiling(lab, seed):
    """The GPU whose memory stays at its measured ceiling pages within 10 minutes."""
    score = _score(lab, seed)
    problems = [("missed", m) for m in score.missed] + [("paged late", m) for m in score.late]
    if problems:
        lines = [
            f"  - {what}: {case}, gpu {gpu} (at its ceiling from minute {start / 60:.1f})"
            for what, (case, gpu, start) in problems
        ]
        pytest.fail(
            "your alert missed a GPU whose memory bandwidth stayed at its ceiling:\n"
            + "\n".join(lines)
            + f"\nIt must page within {pool.MAX_DELAY_S // 60} minutes. What does the gauge read "
            "at the ceiling measured on the card, and is your threshold below it?",
            pytrace=False,
        )


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_bandwidth_alert_stays_quiet_on_gemm_copies_rest_and_loads(lab, seed):
    """No page for the GEMM, 1 MiB copies, rest or a 90-second model load; gpu label kept."""
    score = _score(lab, seed)
    assert not score.unlabelled, (
        "some alerts had no `gpu` label: keep the series' labels so the page names the card"
    )
    false = score.false_pages
    if false:
        lines = [
            f"  - {p.case}: gpu {p.gpu}, minutes {p.start_s / 60:.1f}-{p.end_s / 60:.1f}"
            for p in false[:8]
        ]
        pytest.fail(
            f"your alert paged {len(false)} time(s) where the memory was not held at its "
            "ceiling:\n" + "\n".join(lines) + "\nA GEMM, small copies, rest and a model load of "
            "90 s are not incidents: which reading, for how long, says the memory is saturated?",
            pytrace=False,
        )
