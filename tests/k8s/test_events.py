"""Event aggregation, the kubectl-style table, and the lab clock."""

from __future__ import annotations

import pytest

from labsupport.k8s.events import EventLog, Timing, format_age, format_events


def test_events_aggregate_like_the_api_server_and_reach_subscribers():
    seen = []
    log = EventLog()
    log.subscribe(seen.append)
    log.subscribe(lambda e: 1 / 0)  # a broken display must not break the kubelet
    for _ in range(3):
        log.emit("Pod", "web-0", "Warning", "Unhealthy", "Liveness probe failed: refused")
    log.emit("Pod", "web-0", "Normal", "Killing", "Container app failed liveness probe")
    log.emit("Pod", "web-1", "Warning", "Unhealthy", "Liveness probe failed: refused")
    assert len(seen) == 5, "subscribers see every occurrence"
    events = log.for_object("Pod", "web-0")
    assert [(e.reason, e.count) for e in events] == [("Unhealthy", 3), ("Killing", 1)]
    assert log.reasons("Pod", "web-1") == ["Unhealthy"]


def test_describe_table_matches_kubectl():
    log = EventLog()
    for _ in range(2):
        log.emit("Pod", "p", "Warning", "Unhealthy", "Readiness probe failed: HTTP 503")
    table = format_events(log.all()).splitlines()
    assert table[0] == "Events:"
    assert table[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert table[3].split()[:3] == ["Warning", "Unhealthy", "0s"] and "(x2 over 0s)" in table[3]
    assert table[3].endswith("Readiness probe failed: HTTP 503")
    assert format_events([]) == "Events:            <none>"
    assert [format_age(s) for s in (5, 119, 125, 3600 + 300)] == ["5s", "119s", "2m5s", "1h5m"]


def test_timing_scales_manifest_seconds():
    t = Timing(time_scale=0.1, min_probe_timeout_s=0.5)
    assert t.real_s(30) == pytest.approx(3.0)
    assert t.probe_timeout_s(1) == 0.5 and t.probe_timeout_s(10) == pytest.approx(1.0)
    assert t.backoff_reset_s == pytest.approx(60.0)
    with pytest.raises(ValueError):
        Timing(time_scale=0)
