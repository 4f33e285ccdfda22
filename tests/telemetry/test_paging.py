"""Counting pages from a timeline of firing alerts (by hand; promtool is tested apart)."""

import pytest

from labsupport.telemetry import paging


def _case(episodes, keys=("0", "1"), until=600):
    return paging.Case(series=[], keys=list(keys), episodes=episodes, until_s=until)


def _timeline(spans, until=600):
    return {t: {k for k, lo, hi in spans if lo <= t <= hi} for t in range(0, until + 1, 15)}


def test_runs_real_false_late_missed_and_unlabelled():
    case = _case([("1", 150, 300), ("0", 450, 480)])
    fired = _timeline([("1", 345, 420), ("0", 0, 30), ("", 60, 60)])
    s = paging.score("x", {"c": case}, timeline={"c": fired}, max_delay_s=180, grace_s=300)
    assert [(p.gpu, p.start_s, p.end_s, p.real) for p in s.pages] == [
        ("0", 0, 30, False),
        ("1", 345, 420, True),
    ]
    assert s.late == [("c", "1", 150)] and s.missed == [("c", "0", 450)]
    assert s.unlabelled == [("c", 60)]
    assert s.precision == pytest.approx(0.5)


def test_a_page_inside_the_grace_after_the_end_is_real():
    case = _case([("0", 60, 120)])
    s = paging.score("x", {"c": case}, timeline={"c": _timeline([("0", 75, 400)])}, grace_s=300)
    assert s.pages_real == 1 and not s.false_pages and not s.late


def test_cases_must_share_their_interval():
    a, b = _case([]), paging.Case([], ["0"], [], 60, interval_s=30)
    with pytest.raises(ValueError, match="interval"):
        paging.fired("x", {"a": a, "b": b})
