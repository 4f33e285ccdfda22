"""Checks of lab 280 (GPU running hot): decode the mask, find the slowdown, page only on it.

Diagnosis: `decode_reasons` is compared with the reference decoder on masks that separate
neighbouring bits, combinations and undocumented bits. `triage` is graded on this variant's
node, on a node where the other cause is at work, and on one built so that the shortcuts (the
hottest GPU, the lowest clock, the first problem bit) name the wrong GPU; its numbers must be
this node's. Fix: `alert_rules` must be a rule file the real promtool accepts; run by promtool
over nodes with every kind of slowdown it must page within 3 minutes of each, and over healthy
nodes (idle and busy GPUs from the H100 recording, a warm slot, one-scrape blips, a card type
whose own thresholds are higher) where it must stay quiet. promtool runs once per seed and
rule file.
"""

from __future__ import annotations

import math

import pytest

from labsupport.scenarios.gpu_running_hot import alerts
from labsupport.telemetry import promtool
from tests.labs.truth import gpu_running_hot as truth

_CACHE: dict = {}

# masks that separate a right decoder from the usual slips: the lowest bit, neighbours,
# combinations, everything, and bits nobody documents
MASKS = (0x0, 0x1, 0x4, 0x5, 0x8, 0x10, 0x24, 0x68, 0x88, 0x100, 0x1FF, 0x200, 0x2A8, 0x1000)


def _names(value, mask: int) -> list[str]:
    ok = isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value)
    assert ok, f"decode_reasons({mask:#x}) must return a list of names (str), got {value!r}"
    return list(value)


@pytest.mark.diagnosis
@pytest.mark.timeout(60)
def test_decode_reasons_names_every_set_bit(lab):
    """decode_reasons names each set bit, lowest first, DCGM's way; unknown bits too."""
    _names(lab.decode_reasons(0x4), 0x4)
    for mask in MASKS:
        got, want = _names(lab.decode_reasons(mask), mask), truth.decode(mask)
        assert got == want, (
            f"decode_reasons({mask:#x}) returned {got}, the bits set are {want}. Name each set "
            "bit with DCGM's suffix (SW_POWER_CAP for 0x4 ...), lowest bit first; a mask of 0 "
            "has no reason, and a bit NVIDIA does not document is UNKNOWN_0x<bit>"
        )


def _triage(lab, evidence: dict, label: str) -> dict:
    got = lab.triage(evidence)
    assert isinstance(got, dict), f"triage() must return a dict, got {type(got).__name__}"
    missing = sorted(set(truth.triage(truth.TINY)) - set(got))
    assert not missing, f"{label}: triage() left out {missing}"
    return got


def _number(value, name: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    assert ok, f"triage()[{name!r}] must be a finite number, got {value!r}"
    return float(value)


def _graded_nodes(seed: int) -> dict:
    if ("nodes", seed) not in _CACHE:
        _CACHE[("nodes", seed)] = {k: n.evidence() for k, n in truth.diagnosis_nodes(seed).items()}
    return _CACHE[("nodes", seed)]


@pytest.mark.diagnosis
@pytest.mark.timeout(90)
def test_triage_names_the_gpu_and_the_cause(lab, seed):
    """triage finds the GPU whose clocks are held down and says thermal or power, on three
    nodes, each built so a shortcut names another GPU."""
    cases = {"a two-GPU node written by hand": truth.TINY, **_graded_nodes(seed)}
    for label, evidence in cases.items():
        want, got = truth.triage(evidence), _triage(lab, evidence, label)
        if str(got["gpu"]) != want["gpu"]:
            misses = [k for k, g in truth.near_misses(evidence).items() if g == str(got["gpu"])]
            pytest.fail(
                f"{label}: you named gpu {got['gpu']}; the GPU whose clocks are held down is "
                f"another one."
                + (f" Yours is {misses[0]}." if misses else "")
                + " Every GPU shows non-zero masks: which bits does every GPU show at rest or "
                "at work, and which persist, scrape after scrape, on one GPU only?",
                pytrace=False,
            )
        assert got["cause"] == want["cause"], (
            f"{label}: gpu {want['gpu']} is right, but {got['cause']!r} is not what its bits say. "
            "Read NVIDIA's description of each bit it shows: heat ('thermal') or the hardware's "
            "power protection ('power')?"
        )
        bits = sorted(got["problem_bits"]) if isinstance(got["problem_bits"], list) else None
        assert bits == sorted(want["problem_bits"]), (
            f"{label}: the problem bits of gpu {want['gpu']} are not {got['problem_bits']!r}: "
            "list the names of the bits that held its clocks down (not the normal ones)"
        )
        normal = sorted(got["normal_bits"]) if isinstance(got["normal_bits"], list) else None
        assert normal == sorted(want["normal_bits"]), (
            f"{label}: {got['normal_bits']!r} are not the bits this node shows that are normal: "
            "which bits does a GPU report at rest, and at work at its power limit?"
        )


@pytest.mark.diagnosis
@pytest.mark.timeout(90)
def test_triage_backs_it_with_this_nodes_numbers(lab, seed):
    """triage's clocks and temperature are the slowed GPU's, read from the node's series."""
    cases = {"a two-GPU node written by hand": truth.TINY, **_graded_nodes(seed)}
    for label, evidence in cases.items():
        want, got = truth.triage(evidence), _triage(lab, evidence, label)
        for key in ("sm_clock_mhz_before", "sm_clock_mhz_during"):
            value = _number(got[key], key)
            when = (
                "before its first problem scrape" if "before" in key else "over its problem scrapes"
            )
            assert abs(value - want[key]) <= truth.CLOCK_TOLERANCE_MHZ, (
                f"{label}: {key} = {value:.0f} MHz; gpu {want['gpu']}'s median SM clock {when} "
                f"is {want[key]:.0f} MHz. Use the median of its DCGM_FI_DEV_SM_CLOCK readings"
            )
        value = _number(got["max_temp_c"], "max_temp_c")
        assert abs(value - want["max_temp_c"]) <= truth.TEMP_TOLERANCE_C, (
            f"{label}: max_temp_c = {value:g}; gpu {want['gpu']}'s highest GPU temperature in "
            f"the window is {want['max_temp_c']:g} C"
        )


# ---- the fix ----------------------------------------------------------------------------------
def _rules(lab) -> str:
    text = lab.alert_rules()
    assert isinstance(text, str) and text.strip(), (
        f"alert_rules() must return a Prometheus rule file (YAML text), got {type(text).__name__}"
    )
    if not promtool.available():
        pytest.fail(
            "promtool is not installed here: it grades the rules (apt-get install prometheus)",
            pytrace=False,
        )
    errors = promtool.check_rules(text)
    if errors:
        pytest.fail(
            "promtool rejects your rule file:\n" + "\n".join(f"  - {e}" for e in errors),
            pytrace=False,
        )
    assert "alert:" in text, "the rule file has no alerting rule (`- alert: Name`)"
    return text


def _score(lab, seed: int) -> tuple[alerts.Score, str]:
    text = _rules(lab)
    key = ("score", seed, text)
    if key not in _CACHE:
        _CACHE[key] = alerts.score(text, truth.fix_cases(seed))
    return _CACHE[key], text


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_alert_rules_are_a_valid_rule_file(lab):
    """alert_rules returns rules promtool accepts, with at least one alert."""
    _rules(lab)


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_alert_rules_page_on_every_slowdown(lab, seed):
    """On nodes with a thermal, a power-brake and a fast-trigger slowdown, the rules page for
    the right GPU within 3 minutes of its first problem scrape."""
    score, _ = _score(lab, seed)
    problems = [("missed", m) for m in score.missed] + [("paged late", m) for m in score.late]
    if problems:
        lines = [
            f"  - {what}: {case}, gpu {gpu} (problem bits from minute {start / 60:.1f})"
            for what, (case, gpu, start) in problems
        ]
        pytest.fail(
            f"your rules missed {len(problems)} slowdown(s):\n" + "\n".join(lines) + "\n"
            f"A page must come within {alerts.MAX_DELAY_S // 60} minutes: which bits did those "
            "GPUs show (test each one, combined masks too), and is your `for:` short enough?",
            pytrace=False,
        )


@pytest.mark.fix
@pytest.mark.timeout(150)
def test_alert_rules_stay_quiet_on_healthy_gpus(lab, seed):
    """No page for an idle GPU, a GPU at its power limit, a warm slot, a one-scrape blip or a
    card whose own limits are higher; every alert keeps the gpu label."""
    score, _ = _score(lab, seed)
    assert not score.unlabelled, (
        f"{len(score.unlabelled)} evaluation(s) had an alert without a `gpu` label (e.g. "
        f"{score.unlabelled[0][0]}): on-call must know which card. Keep the series' labels "
        "(no sum/max without `by (gpu, ...)`)"
    )
    false = score.false_pages
    if false:
        lines = [
            f"  - {p.case}: gpu {p.gpu}, minutes {p.start_s / 60:.1f}-{p.end_s / 60:.1f}"
            for p in false[:8]
        ]
        pytest.fail(
            f"your rules paged {len(false)} time(s) where nothing was wrong:\n"
            + "\n".join(lines)
            + "\nWhich readings did those GPUs show? A GPU at rest, one held at its power limit, "
            "a warm card below its own thresholds and a single-scrape blip need no human.",
            pytrace=False,
        )


@pytest.mark.fix
@pytest.mark.gpu
@pytest.mark.timeout(240)
def test_alert_rules_stay_quiet_on_this_cards_own_samples(lab):
    """On this machine's GPU: idle and a real GEMM, sampled through NVML, page nothing (unless
    the card really reports a problem bit while it runs)."""
    from labsupport.scenarios.gpu_running_hot import live

    text = _rules(lab)
    t = live.observe(use_gpu=True, idle_s=4.0, gemm_s=20.0)
    problem = [int(m) & truth.PROBLEM_MASK for m in t["reasons"] if not math.isnan(m)]
    if any(problem):
        pytest.skip(f"this card reported problem bits while sampled ({t.card.name}): not a test")
    fired = live.rules_on_trace(text, t)
    loud = {phase: share for phase, share in fired.items() if share > 0}
    assert not loud, (
        f"on {t.card.name}, idle and under a GEMM at its power limit, your rules fired: "
        f"{loud} (share of one-second evaluations per phase)"
    )
