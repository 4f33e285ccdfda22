"""Lab 299's timeline figure draws every request and every lifecycle mark it is given."""

from __future__ import annotations

import io

from labsupport.k8s.traffic import RequestRecord
from labsupport.scenarios.errors_during_rollout.load import PodLifecycle, RolloutRun
from labsupport.scenarios.errors_during_rollout.plots import timelines


def _run(arm: str, failures: bool) -> RolloutRun:
    pods = {
        "llm-1-aaaaa": PodLifecycle(
            "llm-1-aaaaa",
            "old",
            created_s=-3,
            deleted_s=1.0,
            endpoint_removed_s=1.3,
            pre_stop_s=1.0,
            sigterm_s=2.0,
            sigkill_s=2.5 if failures else None,
            exited_s=2.6,
        ),
        "llm-2-bbbbb": PodLifecycle("llm-2-bbbbb", "new", created_s=0.0, endpoint_added_s=1.0),
    }
    requests = [
        RequestRecord(0, 0, -0.5, 0.8, "ok", backend="llm-1-aaaaa"),
        RequestRecord(
            1,
            1,
            1.5,
            2.5 if failures else 1.9,
            "truncated" if failures else "ok",
            backend="llm-1-aaaaa",
        ),
        RequestRecord(2, 2, 2.1, 2.1, "http_error" if failures else "ok", backend="llm-1-aaaaa"),
        RequestRecord(3, 0, 1.1, 2.0, "ok", backend="llm-2-bbbbb"),
        RequestRecord(4, 1, 2.2, 2.2, "connection_error", backend=None),
    ]
    settings = {
        "pre_stop": "sleep",
        "pre_stop_s": 10,
        "drain_s": 30,
        "grace_s": 45,
        "max_surge": 1,
        "max_unavailable": 0,
        "handler": "drain",
    }
    return RolloutRun(arm, settings, requests, pods, [], True, "Complete", 3.0, 3.5, 1, 3)


def test_one_panel_per_run_with_pods_and_outcomes():
    fig = timelines([_run("default", True), _run("fixed", False)])
    assert len(fig.axes) == 2
    top, bottom = fig.axes
    assert [t.get_text() for t in top.get_yticklabels()] == ["old  aaaaa", "new  bbbbb", "(no pod)"]
    labels = set(top.get_legend_handles_labels()[1])
    assert {"SIGTERM", "SIGKILL", "truncated", "http_error", "preStop sleep"} <= labels
    assert "SIGKILL" not in set(bottom.get_legend_handles_labels()[1])
    assert "3 of 5 requests failed" in top.get_title() and "handler" not in top.get_title()
    fig.savefig(io.BytesIO(), format="png")


def test_settings_go_into_the_titles_only_when_asked():
    fig = timelines([_run("fixed", False)], settings=True)
    title = fig.axes[0].get_title()
    assert "preStop sleep 10 s" in title and "SIGTERM handler: drain" in title
