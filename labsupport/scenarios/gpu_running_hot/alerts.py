"""Score a Prometheus rule file on nodes whose slowdowns are known: pages, false and missed.

    >>> from labsupport.scenarios.gpu_running_hot import alerts, node
    >>> n = node.build(node.NodeSpec(roles=("idle", "busy"), seed=2))
    >>> s = alerts.score(alerts.NAIVE_RULES, {"quiet node": n})
    >>> s.pages_total, s.pages_real, len(s.missed)
    (2, 0, 0)

A page is one stretch of consecutive evaluations in which an alert fires for a GPU. It is real
when it overlaps one of the GPU's slowdowns (from its first problem scrape to `RESOLVE_GRACE_S`
after its last), false otherwise. A slowdown is missed when nothing pages for that GPU within
`MAX_DELAY_S` of its first scrape. Alerts that lost the `gpu` label cannot tell on-call which
card, and are counted apart. The rules run in the real promtool (`labsupport.telemetry.promtool`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labsupport.scenarios.gpu_running_hot.node import INTERVAL_S, Node, series_for_promtool
from labsupport.telemetry import promtool

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


@dataclass(frozen=True)
class Page:
    case: str
    gpu: str
    start_s: int
    end_s: int
    real: bool


@dataclass
class Score:
    """What a rule file did on a set of nodes."""

    pages: list[Page] = field(default_factory=list)
    missed: list[tuple[str, str, float]] = field(default_factory=list)  # case, gpu, start
    late: list[tuple[str, str, float]] = field(default_factory=list)  # paged, but after the delay
    unlabelled: list[tuple[str, int]] = field(default_factory=list)  # case, time: no gpu label

    @property
    def pages_total(self) -> int:
        return len(self.pages)

    @property
    def pages_real(self) -> int:
        return sum(p.real for p in self.pages)

    @property
    def false_pages(self) -> list[Page]:
        return [p for p in self.pages if not p.real]

    @property
    def precision(self) -> float:
        """Share of pages that were real (0 when nothing paged)."""
        return self.pages_real / self.pages_total if self.pages else 0.0

    def summary(self) -> str:
        return (
            f"{self.pages_total} page(s), {self.pages_real} real, {len(self.false_pages)} false; "
            f"{len(self.missed)} slowdown(s) missed"
            + (f", {len(self.late)} paged late" if self.late else "")
            + (
                f"; {len(self.unlabelled)} evaluation(s) with alerts without a gpu label"
                if self.unlabelled
                else ""
            )
        )


def fired(rules: str, nodes: dict[str, Node]) -> dict[str, dict[int, set[str]]]:
    """case -> time -> GPUs with a firing alert ("" for alerts without a gpu label)."""
    keys = sorted({gpu for n in nodes.values() for gpu in n.gpus}, key=int)
    until = max(n.t_s[-1] for n in nodes.values())
    cases = {name: series_for_promtool(n) for name, n in nodes.items()}
    return promtool.firing_many(rules, cases, keys=keys, interval_s=INTERVAL_S, until_s=until)


def score(rules: str, nodes: dict[str, Node], timeline=None) -> Score:
    """Pages, missed and late slowdowns of `rules` on `nodes` (their episodes are the truth)."""
    timeline = timeline if timeline is not None else fired(rules, nodes)
    out = Score()
    for case, n in nodes.items():
        at = timeline[case]
        times = sorted(at)
        out.unlabelled += [(case, t) for t in times if "" in at[t]]
        windows = {}
        for gpu, start, end in n.episodes:
            windows.setdefault(gpu, []).append((start, end + RESOLVE_GRACE_S))
            paged = [t for t in times if start <= t <= end + RESOLVE_GRACE_S and gpu in at[t]]
            if not paged:
                out.missed.append((case, gpu, start))
            elif paged[0] > start + MAX_DELAY_S:
                out.late.append((case, gpu, start))
        for gpu in n.gpus:
            for first, last in _runs([t for t in times if gpu in at[t]], INTERVAL_S):
                real = any(first <= hi and last >= lo for lo, hi in windows.get(gpu, []))
                out.pages.append(Page(case, gpu, first, last, real))
    return out


def _runs(times: list[int], step: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for t in times:
        if runs and t - runs[-1][1] <= step:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs
