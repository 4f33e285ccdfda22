"""What happened to one supervised pod, and whether its probes handled each scenario right.

    >>> from labsupport.scenarios.port_open_but_not_serving.timeline import View, judge
    >>> pod = View(ready=[(0.0, False), (1.0, True)], kills=[])      # Ready at 1 s, never killed
    >>> judge("wedged_engine", pod, {"fault": (3.0, 11.0)}).handled   # fault at 3 s, 8 s window
    False
    >>> judge("healthy", pod, {"healthy": (2.0, 6.0)}).handled
    True

A `View` is what a set of probes did: when the pod's Ready condition changed and when a
failed probe killed the container. It comes from the pod itself, or from a *shadow* probe that
watches the same pod without acting (a shadow liveness "kills" when it reaches its failure
threshold: that is when the kubelet would have restarted the container). `judge` applies the
rule of each scenario to a view (times in seconds since the pod was created):

- healthy, heavy_load: Ready all through the phase and no kill;
- overload: taken out of the Service (not Ready) during the overload, never killed, Ready again
  once the queue has drained;
- gil_busy_loop, blocked_event_loop, wedged_engine: killed by the liveness probe within the
  window after the fault, and not killed before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAULTS = ("gil_busy_loop", "blocked_event_loop", "wedged_engine")
LOADS = ("healthy", "heavy_load", "overload")
SCENARIOS = LOADS + FAULTS
LABELS = {
    "healthy": "healthy (idle, light load)",
    "heavy_load": "heavy healthy load",
    "overload": "overload (queue >> capacity)",
    "gil_busy_loop": "GIL held by a busy thread",
    "blocked_event_loop": "event loop blocked",
    "wedged_engine": "engine step wedged",
}


@dataclass
class View:
    """Ready changes (time, ready) in order, starting with the initial value; kill times."""

    ready: list[tuple[float, bool]] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)

    def ready_at(self, t: float) -> bool:
        value = False
        for when, ready in self.ready:
            if when > t:
                break
            value = ready
        return value

    def unready_spans(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """Stretches of [t0, t1) during which the view was not Ready."""
        spans, start = [], None if self.ready_at(t0) else t0
        for when, ready in self.ready:
            if not t0 < when < t1:
                continue
            if not ready and start is None:
                start = when
            elif ready and start is not None:
                spans.append((start, when))
                start = None
        if start is not None:
            spans.append((start, t1))
        return spans

    def unready_s(self, t0: float, t1: float) -> float:
        return sum(b - a for a, b in self.unready_spans(t0, t1))

    def kills_in(self, t0: float, t1: float) -> list[float]:
        return [t for t in self.kills if t0 <= t < t1]


@dataclass(frozen=True)
class Verdict:
    scenario: str
    handled: bool
    detected_s: float | None  # fault or overload to kill / unready, seconds; None: not seen
    what: str  # one line: what the probes did

    @property
    def mark(self) -> str:
        return "yes" if self.handled else "NO"


def judge(scenario: str, view: View, phases: dict) -> Verdict:
    """The verdict of `view` for `scenario`; `phases` maps phase name -> (start, end) seconds."""
    if scenario in ("healthy", "heavy_load"):
        t0, t1 = phases[scenario]
        kills, down = view.kills_in(t0, t1), view.unready_s(t0, t1)
        ok = not kills and down == 0
        what = (
            "stayed Ready, never restarted"
            if ok
            else f"not Ready for {down:.1f} s of {t1 - t0:.1f} s, {len(kills)} restart(s)"
        )
        return Verdict(scenario, ok, None, what)
    if scenario == "overload":
        t0, t1 = phases["overload"]
        d0, d1 = phases["drain"]
        spans = view.unready_spans(t0, t1)
        kills = view.kills_in(t0, d1)
        back = view.ready_at(d1) or any(r and d0 <= t < d1 for t, r in view.ready)
        detected = spans[0][0] - t0 if spans else None
        ok = bool(spans) and not kills and back
        if ok:
            what = f"taken out of the Service after {detected:.1f} s, Ready again after the drain"
        elif kills:
            what = f"restarted {len(kills)} time(s): a liveness probe killed a busy, healthy server"
        elif not spans:
            what = "stayed Ready: kept receiving traffic with the queue far beyond capacity"
        else:
            what = "taken out of the Service and not Ready again once the queue had drained"
        return Verdict(scenario, ok, detected, what)
    if scenario in FAULTS:
        t_fault, t_end = phases["fault"]
        early = view.kills_in(0.0, t_fault)
        kills = view.kills_in(t_fault, t_end)
        detected = kills[0] - t_fault if kills else None
        ok = bool(kills) and not early
        if early:
            what = f"restarted {len(early)} time(s) before the fault: the probe kills healthy pods"
        elif kills:
            what = f"liveness restarted it {detected:.1f} s after the fault"
        else:
            down = view.unready_s(t_fault, t_end)
            what = (
                f"never restarted in {t_end - t_fault:.0f} s"
                + (f" (not Ready for {down:.1f} s: out of the Service, stuck)" if down else
                   " and still Ready: traffic keeps going to it")
            )  # fmt: skip
        return Verdict(scenario, ok, detected, what)
    raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
