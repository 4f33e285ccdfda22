"""Before and after in one run: the incident's probes, the classic answer, and yours.

    >>> from labsupport.scenarios.port_open_but_not_serving.timeline import Verdict
    >>> from labsupport.scenarios.port_open_but_not_serving.verify import Comparison
    >>> c = Comparison({"incident": {"wedged_engine": Verdict("wedged_engine", False, None, "-")},
    ...                 "yours": {"wedged_engine": Verdict("wedged_engine", True, 3.5, "-")}})
    >>> c.handled("incident"), c.handled("yours"), c.detection_s("yours")
    (0, 1, {'wedged_engine': 3.5})

`compare(variant, yours, gateway_limit)` (about 2 minutes on a CPU) runs every scenario on fresh
pods, for two designs:

1. the **incident's**: tcpSocket liveness, httpGet /health readiness, a gateway without a limit;
   the **classic answer's** probes (httpGet /health liveness, a real 1-token completion as
   readiness) watch the same pods as shadows that act on nothing, so their verdicts come from
   the same run. The loads then the stalled engine on one pod, each fault watched for the whole
   window (nothing restarts these pods), the other two faults side by side on two more.
2. **yours** (`probesets.from_manifest(...).with_handlers(livez=..., readyz=...)`) behind your
   gateway limit: the loads then the stalled engine on one pod, the two faults that keep a
   process from answering side by side on two more.

Each design gets one verdict per scenario (`timeline.judge`); `handled(design)` counts the
scenarios it got right.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field

from labsupport import progress
from labsupport.scenarios.port_open_but_not_serving import probesets
from labsupport.scenarios.port_open_but_not_serving import runs as pod_runs
from labsupport.scenarios.port_open_but_not_serving.timeline import FAULTS, LABELS, SCENARIOS

DESIGNS = {
    "incident": "tcpSocket liveness + /health readiness, no gateway limit",
    "classic": "/health liveness + 1-token inference readiness, no gateway limit",
    "yours": "your /livez + /readyz + gateway limit",
}
ALONE = ("gil_busy_loop", "blocked_event_loop")  # faults on pods of their own


@dataclass
class Comparison:
    scorecards: dict  # design -> {scenario: Verdict}
    runs: dict = field(default_factory=dict)  # "incident" | "yours" -> [PodRun]
    fault_window_s: float = 0.0
    device: str = ""

    def handled(self, design: str) -> int:
        return sum(v.handled for v in self.scorecards[design].values())

    def detection_s(self, design: str) -> dict:
        """Fault -> seconds from the fault to the liveness restart (None: never)."""
        return {f: v.detected_s for f, v in self.scorecards[design].items() if f in FAULTS}

    def table(self) -> str:
        designs = list(self.scorecards)
        lines = [f"{'scenario':<34}" + "".join(f"{d:>12}" for d in designs)]
        for s in SCENARIOS:
            cells = []
            for d in designs:
                v = self.scorecards[d].get(s)
                cell = "-" if v is None else v.mark
                if v is not None and v.handled and v.detected_s is not None:
                    cell += f" {v.detected_s:.1f}s"
                cells.append(f"{cell:>12}")
            lines.append(f"{LABELS[s]:<34}" + "".join(cells))
        total = "".join(f"{f'{self.handled(d)} of {len(self.scorecards[d])}':>12}" for d in designs)
        lines.append(f"{'handled right':<34}" + total)
        return "\n".join(lines)

    def explain(self, design: str) -> str:
        return "\n".join(f"{LABELS[s]:<34} {v.what}" for s, v in self.scorecards[design].items())


def _merge(runs, attr: str, name: str | None = None) -> dict:
    out: dict = {}
    for run in runs:
        out.update(getattr(run, attr) if name is None else getattr(run, attr).get(name, {}))
    return out


def _side_by_side(calls) -> list:
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        jobs = [pool.submit(fn, *args, **kwargs) for fn, args, kwargs in calls]
        return [job.result() for job in jobs]


def compare(
    variant,
    yours: probesets.ProbeSet,
    gateway_limit: int | None,
    *,
    fault_window_s: float = 8.0,
    scale: str = "full",
    echo=None,
) -> Comparison:
    """Every scenario with the incident's probes (+ classic shadows), then with yours."""
    runs: dict = {"incident": [], "yours": []}
    with progress.bar(4, "designs side by side", unit="run") as bar:
        if echo:
            echo(f"--- {DESIGNS['incident']} (shadows: {DESIGNS['classic']})")
        shadows = pod_runs.classic_shadows()
        runs["incident"].append(
            pod_runs.run_loads(
                probesets.INCIDENT,
                variant,
                shadows=shadows,
                then_fault="wedged_engine",
                until_recovered=False,
                window_s=fault_window_s,
                scale=scale,
                echo=echo,
            )  # fmt: skip
        )
        bar.update()
        kw = {"window_s": fault_window_s, "until_recovered": False, "shadows": shadows}
        runs["incident"] += _side_by_side(
            [(pod_runs.run_fault, (f, probesets.INCIDENT, variant), kw) for f in ALONE]
        )
        bar.update()
        if echo:
            echo(f"--- {DESIGNS['yours']}")
        window = variant.restart_within_s * probesets.TIMING.time_scale + 4.0
        runs["yours"].append(
            pod_runs.run_loads(
                yours,
                variant,
                gateway_limit=gateway_limit,
                then_fault="wedged_engine",
                window_s=window,
                scale=scale,
                echo=echo,
            )  # fmt: skip
        )
        bar.update()
        runs["yours"] += _side_by_side(
            [(pod_runs.run_fault, (f, yours, variant), {"window_s": window}) for f in ALONE]
        )
        bar.update()
    cards = {
        "incident": _merge(runs["incident"], "verdicts"),
        "classic": _merge(runs["incident"], "shadow_verdicts", probesets.CLASSIC.name),
        "yours": _merge(runs["yours"], "verdicts"),
    }
    order = [s for s in SCENARIOS if s in cards["incident"]]
    cards = {d: {s: card[s] for s in order if s in card} for d, card in cards.items()}
    device = next((r.device for r in runs["yours"] if r.device), "")
    return Comparison(cards, runs, fault_window_s, device)
