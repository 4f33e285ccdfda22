"""The before/after comparison: scorecards, tables, and one short live comparison."""

import pytest

from labsupport.scenarios.port_open_but_not_serving import verify
from labsupport.scenarios.port_open_but_not_serving.timeline import Verdict


def _card(handled: dict) -> dict:
    return {s: Verdict(s, ok, 3.0 if ok and s.endswith(("loop", "engine")) else None, "-")
            for s, ok in handled.items()}  # fmt: skip


def test_table_counts_and_detection_times():
    c = verify.Comparison(
        {
            "incident": _card({"healthy": True, "wedged_engine": False}),
            "yours": _card({"healthy": True, "wedged_engine": True}),
        },
        fault_window_s=8.0,
    )
    assert c.handled("incident") == 1 and c.handled("yours") == 2
    assert c.detection_s("incident") == {"wedged_engine": None}
    table = c.table()
    assert "yes 3.0s" in table and "NO" in table and "2 of 2" in table
    assert "engine step wedged" in c.explain("yours")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_compare_on_one_fault():
    def liveness(previous, current):
        return current.ok

    def readiness(previous, current):
        return current.ok and current.value("vllm:num_requests_waiting") <= 64

    c = verify.compare(liveness, readiness, fault_window_s=6.0, faults=("gil_busy_loop",))
    assert set(c.scorecards) == {"incident", "classic", "yours"}
    assert c.scorecards["yours"]["gil_busy_loop"].handled
    assert not c.scorecards["incident"]["gil_busy_loop"].handled
    assert c.scorecards["classic"]["gil_busy_loop"].handled  # /health liveness times out
    assert not c.scorecards["classic"]["heavy_load"].handled  # inference readiness flaps
    assert c.scorecards["yours"]["overload"].handled
