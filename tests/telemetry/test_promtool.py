"""Rules run in the real promtool; we read back which alerts fired, when, for which label."""

import pytest

from labsupport.telemetry import promtool

pytestmark = pytest.mark.skipif(not promtool.available(), reason="promtool is not installed")

RULES = """
groups:
- name: t
  rules:
  - alert: Hot
    expr: temp > 80
    for: 30s
"""


def _series(gpu, values, name="temp"):
    return promtool.Series(name, {"gpu": gpu, "hostname": "n"}, values)


def test_for_holds_an_alert_pending_until_it_has_lasted():
    fired = promtool.firing(
        RULES, [_series("0", [70, 85, 85, 85, 85, 70])], keys=["0"], interval_s=15, until_s=90
    )
    assert [t for t, f in fired.items() if f] == [45, 60]


def test_many_cases_and_keys_in_one_run_and_missing_samples():
    cases = {
        "a": [_series("0", [90] * 8), _series("1", [70] * 8)],
        "b": [_series("1", [90, 90, 90, float("nan"), 90, 90, 90, 90])],
    }
    got = promtool.firing_many(RULES, cases, keys=["0", "1"], interval_s=15, until_s=105)
    assert got["a"][60] == {"0"}
    assert got["b"][30] == {"1"} and got["b"][105] == {"1"}


def test_alerts_without_the_label_are_reported_apart():
    rules = RULES.replace("expr: temp > 80", "expr: max(temp) > 80")
    got = promtool.firing(rules, [_series("0", [90] * 6)], keys=["0"], interval_s=15, until_s=75)
    assert got[75] == {""}


def test_invalid_rules_raise_with_promtools_words():
    with pytest.raises(promtool.RulesInvalid) as info:
        promtool.firing(
            "groups: [{name: x, rules: [{alert: A, expr: 'up >'}]}]",
            [],
            keys=["0"],
            interval_s=15,
            until_s=15,
        )
    assert "parse error" in str(info.value)
    assert promtool.check_rules(RULES) == []


def test_go_durations():
    assert promtool.seconds("2m30s") == 150
    assert promtool.seconds("1h0m0s") == 3600
    assert promtool.seconds("0s") == 0
    assert promtool.seconds("250ms") == 0.25
    with pytest.raises(ValueError):
        promtool.seconds("soon")


def test_a_missing_promtool_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(promtool, "PROMTOOL", "promtool-not-here")
    assert not promtool.available()
    with pytest.raises(promtool.PromtoolMissing, match="apt-get install prometheus"):
        promtool.check_rules(RULES)
