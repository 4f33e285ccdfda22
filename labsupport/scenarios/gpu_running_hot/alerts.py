"""Lab 280's rule files scored on nodes whose slowdowns are known: pages, false and missed.

    >>> from labsupport.scenarios.gpu_running_hot import alerts, node
    >>> n = node.build(node.NodeSpec(roles=("idle", "busy"), seed=2))
    >>> s = alerts.score(alerts.NAIVE_RULES, {"quiet node": n})
    >>> s.pages_total, s.pages_real, len(s.missed)
    (2, 0, 0)

A slowdown must page within `MAX_DELAY_S` of its first problem scrape; an alert may keep firing
up to `RESOLVE_GRACE_S` after its last. The counting is `labsupport.telemetry.paging`'s, the
rules run in the real promtool.
"""

from __future__ import annotations

from labsupport.scenarios.gpu_running_hot.node import INTERVAL_S, Node, series_for_promtool
from labsupport.telemetry import paging
from labsupport.telemetry.paging import Page, Score

__all__ = ["NAIVE_RULES", "MAX_DELAY_S", "RESOLVE_GRACE_S", "Page", "Score", "cases", "score"]

MAX_DELAY_S = 180  # a page more than 3 minutes after the slowdown began came too late
RESOLVE_GRACE_S = 300  # an alert may keep firing up to 5 minutes after the slowdown ended
# The rules the incident's team wrote (the classic answer): any bit, any temperature above 82 C.
NAIVE_RULES = """\
groups:
- name: gpu-health
  rules:
  - alert: GPUThrottling
    expr: DCGM_FI_DEV_CLOCKS_EVENT_REASONS > 0
    labels: {severity: page}
  - alert: GPUTooHot
    expr: DCGM_FI_DEV_GPU_TEMP > 82
    labels: {severity: page}
"""


def cases(nodes: dict[str, Node]) -> dict[str, paging.Case]:
    """Each node as a paging case: its series, its GPUs, its slowdowns."""
    return {
        name: paging.Case(
            series_for_promtool(n), list(n.gpus), list(n.episodes), n.t_s[-1], INTERVAL_S
        )
        for name, n in nodes.items()
    }


def score(rules: str, nodes: dict[str, Node], timeline=None) -> Score:
    """Pages, missed and late slowdowns of `rules` on `nodes` (their episodes are the truth)."""
    return paging.score(
        rules, cases(nodes), max_delay_s=MAX_DELAY_S, grace_s=RESOLVE_GRACE_S, timeline=timeline
    )
