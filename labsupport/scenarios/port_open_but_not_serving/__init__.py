"""Lab 278, the port answers but nothing is served: a model server's pod, its probes, its faults.

    >>> from labsupport.scenarios import port_open_but_not_serving as scenario
    >>> v = scenario.variant(0)
    >>> v.capacity, v.peak, v.overload
    (32, 64, 224)
    >>> sorted(scenario.CAUSES)
    ['engine', 'event_loop', 'gil', 'none']

Modules, one concern each: `evidence` (what an on-call engineer can gather from outside a
server in a few seconds: TCP connects, /health, a 1-token completion, /metrics, the process's
CPU time), `matrix` (every probe in every situation on live servers), `gateway` (the gateway's
admission limit in front of a pod), `probesets` (the pod's probes: the incident's, the classic
answer's, and yours from a manifest), `runs` (a supervised pod through loads and faults),
`timeline` (what the probes did, and a verdict per scenario), `verify` (designs side by side),
`plots`, `hints`. Importing this package imports none of them.

`variant(seed)` says what a seed changes: which part of the server stops in the incident (one
of `CAUSES`, never printed before the diagnosis), how many requests the server runs at once
(`capacity`), the pace of an engine step, the light, peak and overload traffic, how hard and
when the fault hits, and the numbers the fix must respect: the longest legitimate pause of the
engine (`stall_s`) and how soon a stuck server must be restarted (`restart_within_s`), both in
manifest seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# What can stop a server that still holds its port: the answers of the diagnosis exercise.
CAUSES = {
    "none": "nothing is stuck: the server is idle or busy, and serves",
    "engine": "the engine makes no progress, while the HTTP side of the process answers",
    "event_loop": "the event loop that runs every HTTP route does not get to run",
    "gil": "no Python thread of the process gets to run: one of them keeps the interpreter lock",
}
FAULT_OF = {"engine": "wedged_engine", "event_loop": "blocked_event_loop", "gil": "gil_busy_loop"}
INCIDENT_CAUSES = ("engine", "event_loop", "gil")  # seeds 0, 1, 2: one each
CAPACITIES = (32, 24, 40)
STEP_MS = (20.0, 18.0, 22.0, 16.0, 24.0)
STALLS_S = (20, 30, 15, 25)  # manifest seconds
RESTART_WITHIN_S = (60, 90, 45, 75)


@dataclass(frozen=True)
class Variant:
    """One incident: the server, its traffic, and what goes wrong (not shown: `cause`)."""

    seed: int
    capacity: int  # requests the server runs at once (--max-num-seqs); more wait in its queue
    step_ms: float  # an engine step takes at least this long (stand-in for GPU time per step)
    light: int  # clients of light traffic (closed loop: one request after another)
    peak: int  # clients at the heaviest healthy hour, per replica: capacity running, the rest wait
    overload: int  # clients in an overload (a retry storm): far beyond what the server runs
    max_tokens: int  # tokens each request of the loads generates
    stall_s: int  # the longest legitimate pause between engine steps (a long prefill), manifest s
    restart_within_s: int  # a stuck server must be restarted within this, manifest seconds
    fault_after_s: float  # real seconds of light traffic before the incident's fault starts
    gil_hold_ms: float  # the busy thread keeps the interpreter lock this long at a time
    loop_block_s: float  # the event loop is blocked this long at a time
    cause: str = field(repr=False, default="engine")  # one of INCIDENT_CAUSES: the answer

    def server_args(self) -> tuple[str, ...]:
        """`srelab serve` options of this variant's server."""
        return ("--min-step-ms", f"{self.step_ms:g}", "--max-num-seqs", str(self.capacity))

    def fault_value(self, fault: str) -> float | None:
        """The `POST /admin/fault` value for a server fault (None: it takes none)."""
        return {"gil_busy_loop": self.gil_hold_ms, "blocked_event_loop": self.loop_block_s}.get(
            fault
        )

    @property
    def incident_fault(self) -> str:
        """The server fault behind the incident (what the diagnosis must find)."""
        return FAULT_OF[self.cause]

    def describe(self) -> str:
        """What the on-call engineer knows about this deployment (nothing about the cause)."""
        return (
            f"server: runs {self.capacity} requests at once, an engine step takes at least "
            f"{self.step_ms:g} ms; traffic per replica: {self.light} clients on a quiet hour, "
            f"{self.peak} at the daily peak, {self.overload} in a retry storm\n"
            f"SLOs: a stuck server is restarted within {self.restart_within_s} s; the engine may "
            f"legitimately pause up to {self.stall_s} s between steps (a long prefill)"
        )


def variant(seed: int) -> Variant:
    """The incident of `seed` (0 is the solution notebook's)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = random.Random(f"278:{seed}")
    capacity = CAPACITIES[seed % len(CAPACITIES)]
    return Variant(
        seed=seed,
        capacity=capacity,
        step_ms=STEP_MS[seed % len(STEP_MS)],
        light=2 + seed % 3,
        peak=2 * capacity,  # a full batch waiting: a 1-token probe waits a whole request
        overload=7 * capacity,
        max_tokens=96,
        stall_s=STALLS_S[seed % len(STALLS_S)],
        restart_within_s=RESTART_WITHIN_S[seed % len(RESTART_WITHIN_S)],
        fault_after_s=round(rng.uniform(1.5, 3.0), 1),
        gil_hold_ms=float(rng.choice((1500, 2000, 2500))),
        loop_block_s=float(rng.choice((4, 6, 8))),
        cause=INCIDENT_CAUSES[seed % len(INCIDENT_CAUSES)],
    )


__all__ = ["CAUSES", "FAULT_OF", "Variant", "variant"]
