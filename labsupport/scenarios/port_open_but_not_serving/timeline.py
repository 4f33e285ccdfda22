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
rule of each scenario (times in seconds since the pod was created; `traffic` per phase, as the
clients and the gateway saw it: requests shed, the most in flight at the replica):

- healthy: Ready all through idle and light traffic, no kill;
- heavy_load (the daily peak): Ready all through, no kill, and nothing shed at the gateway;
- overload (a retry storm): still Ready and never killed - every replica sees the same storm,
  and a replica taken out of the Service only moves its share onto the others - while the
  gateway sheds the excess: requests answered 429 at once, and at most `queue_bound` requests
  in flight at the replica (its capacity running and two batches waiting), as the gateway
  counted them;
- gil_busy_loop, blocked_event_loop, wedged_engine: killed by the liveness probe within the
  window after the fault, and not killed before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAULTS = ("gil_busy_loop", "blocked_event_loop", "wedged_engine")
LOADS = ("healthy", "heavy_load", "overload")
SCENARIOS = LOADS + FAULTS
LABELS = {
    "healthy": "healthy (idle, light traffic)",
    "heavy_load": "daily peak (queue of a batch)",
    "overload": "retry storm (queue >> capacity)",
    "gil_busy_loop": "GIL held by a thread",
    "blocked_event_loop": "event loop blocked",
    "wedged_engine": "engine stalled",
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
    detected_s: float | None  # fault to kill, seconds; None: not seen (or not a fault)
    what: str  # one line: what the probes (and the gateway) did

    @property
    def mark(self) -> str:
        return "yes" if self.handled else "NO"


def judge(scenario: str, view: View, phases: dict, traffic: dict | None = None) -> Verdict:
    """The verdict of `view` for `scenario`; `phases` maps phase name -> (start, end) seconds,
    `traffic` phase name -> {"shed": n, "p50_s": median latency of admitted requests}."""
    traffic = traffic or {}
    if scenario in ("healthy", "heavy_load"):
        t0, t1 = phases[scenario]
        kills, down = view.kills_in(t0, t1), view.unready_s(t0, t1)
        shed = traffic.get(scenario, {}).get("shed", 0)
        if kills or down:
            what = f"not Ready for {down:.1f} s of {t1 - t0:.1f} s, {len(kills)} restart(s)"
        elif shed:
            what = f"the gateway shed {shed} requests of healthy traffic with 429"
        else:
            what = "stayed Ready, never restarted, nothing shed"
        return Verdict(scenario, not (kills or down or shed), None, what)
    if scenario == "overload":
        t0, t1 = phases["overload"]
        kills = view.kills_in(phases.get("heavy_load", (t0, t1))[0], phases["drain"][1])
        down = view.unready_s(t0, t1)
        storm = traffic.get("overload", {})
        shed, queue = storm.get("shed", 0), storm.get("in_flight_max")
        bound = storm.get("queue_bound")
        if kills:
            what = f"restarted {len(kills)} time(s): a liveness probe killed a busy, healthy server"
        elif down:
            what = (
                f"taken out of the Service for {down:.1f} s: every replica sees the same storm, "
                "and the others get this one's share on top"
            )
        elif not shed:
            what = f"nothing shed: up to {queue} requests queued at the replica"
        elif queue is None or bound is None or queue > bound:
            what = f"{shed} shed, too few: up to {queue} in flight at the replica (bound {bound})"
        else:
            what = f"stayed Ready; {shed} shed with 429, at most {queue} in flight at the replica"
        ok = not kills and not down and shed > 0 and queue is not None and bound is not None
        return Verdict(scenario, ok and queue <= bound, None, what)
    if scenario in FAULTS:
        t_fault, t_end = phases["fault"]
        early = view.kills_in(0.0, t_fault)
        kills = view.kills_in(t_fault, t_end)
        detected = kills[0] - t_fault if kills else None
        if early:
            what = f"restarted {len(early)} time(s) before the fault: the probe kills healthy pods"
        elif kills:
            what = f"liveness restarted it {detected:.1f} s after the fault"
        else:
            down = view.unready_s(t_fault, t_end)
            what = f"never restarted in {t_end - t_fault:.0f} s" + (
                f" (not Ready for {down:.1f} s: out of the Service, stuck)"
                if down
                else " and still Ready: traffic keeps going to it"
            )
        return Verdict(scenario, bool(kills) and not early, detected, what)
    raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
