"""Scoring a rule file: pages, false ones, missed and late slowdowns (promtool and by hand)."""

import pytest

from labsupport.scenarios.gpu_running_hot import alerts, node
from labsupport.telemetry import promtool

BITS = """
groups:
- name: g
  rules:
  - alert: Slow
    expr: (floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / 8) % 2 == 1) or
          (floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / 32) % 8 > 0)
    for: 1m
"""


def _node():
    spec = node.NodeSpec(
        roles=("idle", "busy", "bursty"),
        seed=7,
        event=node.Event(1, "brake", 900, 1500),
        blips=((2, 600.0),),
    )
    return node.build(spec)


def test_score_by_hand_counts_runs_false_missed_and_late():
    n = _node()
    times = n.t_s
    at = {t: set() for t in times}
    for t in times:
        if 900 + 240 <= t <= 1500:
            at[t].add("1")  # paged 4 minutes after the first problem scrape: late
        if 300 <= t <= 330:
            at[t].add("0")  # a false page on the idle GPU
    s = alerts.score("unused", {"c": n}, timeline={"c": at})
    assert s.pages_total == 2 and s.pages_real == 1 and len(s.false_pages) == 1
    assert s.late == [("c", "1", 900)] and s.missed == []
    assert s.precision == 0.5
    quiet = alerts.score("unused", {"c": n}, timeline={"c": {t: set() for t in times}})
    assert quiet.missed == [("c", "1", 900)] and quiet.precision == 0.0
    assert "1 incident(s) missed" in quiet.summary()


@pytest.mark.skipif(not promtool.available(), reason="promtool is not installed")
def test_promtool_the_teams_rules_page_everything_bit_tests_only_the_slowdown():
    n = _node()
    naive = alerts.score(alerts.NAIVE_RULES, {"c": n})
    assert sorted(p.gpu for p in naive.pages) == ["0", "1", "2"]
    assert naive.pages_real == 1 and not naive.missed
    right = alerts.score(BITS, {"c": n})
    assert [(p.gpu, p.real) for p in right.pages] == [("1", True)]
    assert not right.missed and not right.late and not right.unlabelled
    blip = alerts.score(BITS.replace("for: 1m", "for: 0s"), {"c": n})
    assert [p.gpu for p in blip.false_pages] == ["2"]  # the one-scrape blip pages without `for`
