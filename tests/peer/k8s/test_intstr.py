"""Peer cases: IntOrString counts and percentages (maxSurge, maxUnavailable).

Ported from kubernetes/kubernetes
staging/src/k8s.io/apimachinery/pkg/util/intstr/intstr_test.go
at commit 316eff8dee1bb7a5929a28bc07bace910bb0e126, run against `labsupport.k8s.rollout`
(`int_or_percent` is getIntOrPercentValueSafely, `scaled_value` GetScaledValueFromIntOrPercent).
Go's FromInt(n) is a Python int, FromString(s) a str. Out of scope: docs/peer_scope.md.
"""

from __future__ import annotations

import pytest

from labsupport.k8s.rollout import int_or_percent, scaled_value

SOURCE = "intstr_test.go @ 316eff8dee1bb7a5929a28bc07bace910bb0e126"


@pytest.mark.parametrize(
    "value,want_value,want_percent,want_error",
    [
        pytest.param(200, 200, False, False, id="FromInt(200)"),
        pytest.param("200", 0, False, True, id="FromString(200)"),
        pytest.param("30%0", 0, False, True, id="FromString(30%0)"),
        pytest.param("40%", 40, True, False, id="FromString(40%)"),
        pytest.param("%", 0, False, True, id="FromString(%)"),
        pytest.param("a%", 0, False, True, id="FromString(a%)"),
        pytest.param("a", 0, False, True, id="FromString(a)"),
        pytest.param("40#", 0, False, True, id="FromString(40#)"),
        pytest.param("40%%", 0, False, True, id="FromString(40%%)"),
    ],
)
def test_get_int_from_int_or_string(value, want_value, want_percent, want_error):
    """TestGetIntFromIntOrString (intstr_test.go @ 316eff8d)."""
    if want_error:
        with pytest.raises(ValueError):
            int_or_percent(value)
    else:
        assert int_or_percent(value) == (want_value, want_percent)


@pytest.mark.parametrize(
    "value,total,round_up,want",
    [
        pytest.param(123, 0, False, 123, id="FromInt(123)"),
        pytest.param("90%", 100, True, 90, id="90%-of-100-up"),
        pytest.param("90%", 95, True, 86, id="90%-of-95-up"),
        pytest.param("90%", 95, False, 85, id="90%-of-95-down"),
        pytest.param("%", 0, False, ValueError, id="%"),
        pytest.param("90#", 0, False, ValueError, id="90#"),
        pytest.param("#%", 0, False, ValueError, id="#%"),
        pytest.param("90", 0, False, ValueError, id="90-not-a-percentage"),
    ],
)
def test_get_int_from_int_or_percent(value, total, round_up, want):
    """TestGetIntFromIntOrPercent (intstr_test.go @ 316eff8d)."""
    if want is ValueError:
        with pytest.raises(ValueError):
            scaled_value(value, total, round_up)
    else:
        assert scaled_value(value, total, round_up) == want


def test_get_value_from_int_or_percent_nil():
    """TestGetValueFromIntOrPercentNil (intstr_test.go @ 316eff8d): nil is an error."""
    with pytest.raises(ValueError):
        scaled_value(None, 0, False)
