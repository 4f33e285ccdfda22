"""Before and after in one run: the incident's probes, the classic answer, and yours.

    >>> from labsupport.scenarios.port_open_but_not_serving.timeline import Verdict
    >>> from labsupport.scenarios.port_open_but_not_serving.verify import Comparison
    >>> c = Comparison({"incident": {"wedged_engine": Verdict("wedged_engine", False, None, "-")},
    ...                 "yours": {"wedged_engine": Verdict("wedged_engine", True, 3.5, "-")}})
    >>> c.handled("incident"), c.handled("yours"), c.detection_s("yours")
    (0, 1, {'wedged_engine': 3.5})

`compare(liveness, readiness)` (about 2 minutes on a CPU) runs every scenario twice on fresh
pods: once with the incident's probes (tcpSocket liveness, httpGet /health readiness) - each
fault watched for the whole window, since nothing restarts the pod - with the classic
answer's probes (httpGet /health liveness, 1-token inference readiness) as shadows on the same
pods, and once with your functions as the pod's probes. Each design gets one verdict per
scenario (`timeline.judge`); `handled(design)` counts the scenarios it got right.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labsupport.scenarios.port_open_but_not_serving import probesets
from labsupport.scenarios.port_open_but_not_serving import runs as pod_runs
from labsupport.scenarios.port_open_but_not_serving.timeline import FAULTS, LABELS, SCENARIOS

DESIGNS = {
    "incident": "tcpSocket liveness + /health readiness",
    "classic": "/health liveness + 1-token inference readiness",
    "yours": "your liveness + readiness over /metrics",
}


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
        lines = [f"{'scenario':<32}" + "".join(f"{d:>12}" for d in designs)]
        for s in SCENARIOS:
            cells = []
            for d in designs:
                v = self.scorecards[d].get(s)
                cell = "-" if v is None else v.mark
                if v is not None and v.handled and v.detected_s is not None:
                    cell += f" {v.detected_s:.1f}s"
                cells.append(f"{cell:>12}")
            lines.append(f"{LABELS[s]:<32}" + "".join(cells))
        total = "".join(f"{f'{self.handled(d)} of {len(self.scorecards[d])}':>12}" for d in designs)
        lines.append(f"{'handled right':<32}" + total)
        return "\n".join(lines)

    def explain(self, design: str) -> str:
        return "\n".join(f"{LABELS[s]:<32} {v.what}" for s, v in self.scorecards[design].items())


def _merge(runs, attr: str, name: str | None = None) -> dict:
    out: dict = {}
    for run in runs:
        out.update(getattr(run, attr) if name is None else getattr(run, attr).get(name, {}))
    return out


def compare(
    liveness, readiness, *, fault_window_s: float = 8.0, faults=FAULTS, echo=None
) -> Comparison:
    """Every scenario with the incident's probes (+ classic shadows), then with yours."""
    yours = probesets.from_functions(liveness, readiness)
    runs: dict = {"incident": [], "yours": []}
    for design, probes in (("incident", probesets.INCIDENT), ("yours", yours)):
        if echo:
            echo(f"--- {DESIGNS[design]}")
        shadows = pod_runs.classic_shadows() if design == "incident" else None
        runs[design].append(pod_runs.run_loads(probes, shadows=shadows, echo=echo))
        for fault in faults:
            runs[design].append(
                pod_runs.run_fault(
                    fault,
                    probes,
                    window_s=fault_window_s,
                    until_recovered=design == "yours",
                    shadows=shadows,
                    echo=echo,
                )
            )
    cards = {
        "incident": _merge(runs["incident"], "verdicts"),
        "classic": _merge(runs["incident"], "shadow_verdicts", probesets.CLASSIC.name),
        "yours": _merge(runs["yours"], "verdicts"),
    }
    order = [s for s in SCENARIOS if s in cards["incident"]]
    cards = {d: {s: card[s] for s in order if s in card} for d, card in cards.items()}
    device = next((r.device for r in runs["yours"] if r.device), "")
    return Comparison(cards, runs, fault_window_s, device)
