"""The designs side by side: scorecards and tables (the live comparison runs in the notebook)."""

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
    assert "engine stalled" in c.explain("yours")
    assert set(verify.DESIGNS) == {"incident", "classic", "yours"}
