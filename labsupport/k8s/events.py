"""Kubernetes-style events and the lab clock (`Timing`), shared by pods and deployments.

    >>> from labsupport.k8s.events import EventLog, Timing
    >>> log = EventLog()
    >>> _ = log.emit("Pod", "web-1", "Warning", "Unhealthy", "Liveness probe failed: boom")
    >>> _ = log.emit("Pod", "web-1", "Warning", "Unhealthy", "Liveness probe failed: boom")
    >>> log.for_object("Pod", "web-1")[0].count
    2
    >>> Timing(time_scale=0.1).real_s(30)
    3.0

`Timing.time_scale` multiplies every duration written in manifest seconds (probe delays and
periods, grace periods, preStop sleeps, restart back-off, deadlines) into real seconds, so a lab
plays a 2-minute Kubernetes story in 12 s at time_scale=0.1. The processes themselves run in
real time: a Python server still needs ~0.2-1 s to start, whatever the scale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger("labsupport.k8s")

NAMESPACE = "default"
NODE = "localhost"


@dataclass(frozen=True)
class Timing:
    """How manifest seconds map to real seconds in this lab.

    time_scale: real seconds per manifest second (0.1: ten times faster than a cluster).
    min_probe_timeout_s: floor on a scaled probe timeout; a Python server on a shared CPU
        cannot promise 100 ms answers, which is not what `timeoutSeconds: 1` means on a node.
    backoff_base_seconds, backoff_max_seconds: the kubelet's container restart back-off
        (10 s doubling to 5 min, in manifest seconds, so scaled like everything else); it
        resets after 600 s of running whatever the maximum (see `labsupport.k8s.backoff`).
    """

    time_scale: float = 0.1
    min_probe_timeout_s: float = 0.5
    backoff_base_seconds: float = 10.0
    backoff_max_seconds: float = 300.0

    def __post_init__(self):
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")

    def real_s(self, manifest_seconds: float) -> float:
        return float(manifest_seconds) * self.time_scale

    def probe_timeout_s(self, timeout_seconds: float) -> float:
        return max(self.real_s(timeout_seconds), self.min_probe_timeout_s)

    def backoff_s(self, restart_number: int) -> float:
        """Real delay before restart `restart_number` (1 = first restart: immediate).

        The kubelet restarts at once after the first exit, then waits 10 s, 20 s, 40 s ...
        capped at 300 s (manifest seconds; a base above the maximum is clamped to it),
        resetting after 10 min of running.
        """
        if restart_number <= 1:
            return 0.0
        base = min(self.backoff_base_seconds, self.backoff_max_seconds)
        delay = base * 2 ** (restart_number - 2)
        return self.real_s(min(delay, self.backoff_max_seconds))

    @property
    def backoff_reset_s(self) -> float:
        """Real seconds of running after which the back-off starts again from the base.

        600 manifest seconds whatever `backoff_max_seconds` is: the kubelet replaces
        client-go's default expiry (2 x max) with a fixed 600 s (pkg/kubelet/kubelet.go,
        NewMainKubelet: `crashLoopBackOff.HasExpiredFunc`).
        """
        return self.real_s(600.0)


@dataclass
class Event:
    """One event, aggregated like the API server does (same object, reason and message)."""

    kind: str
    name: str
    type: str  # Normal | Warning
    reason: str
    message: str
    source: str
    first_time: float
    last_time: float
    count: int = 1

    def line(self) -> str:
        return f"{self.type:<8} {self.reason:<18} {self.kind}/{self.name}: {self.message}"


def format_age(seconds: float) -> str:
    """kubectl's short duration: 45s, 3m12s, 2h5m."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60}m"


@dataclass
class EventLog:
    """Thread-safe event store with live subscribers (a notebook can pass `print`).

    Subscribers run on the thread that emits (a kubelet or controller thread): keep them quick.
    """

    subscribers: list[Callable[[Event], None]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    max_events: int = 5000

    def __post_init__(self):
        self._lock = threading.Lock()

    def subscribe(self, fn: Callable[[Event], None]) -> None:
        self.subscribers.append(fn)

    def emit(self, kind, name, type_, reason, message, source="kubelet") -> Event:
        now = time.time()
        with self._lock:
            for ev in reversed(self.events):
                if (ev.kind, ev.name, ev.reason, ev.message) == (kind, name, reason, message):
                    ev.count += 1
                    ev.last_time = now
                    break
            else:
                self.events.append(Event(kind, name, type_, reason, message, source, now, now))
                del self.events[: -self.max_events]  # a long notebook session stays bounded
            occurrence = Event(kind, name, type_, reason, message, source, now, now)
        logger.info("%s", occurrence.line())
        for fn in list(self.subscribers):
            try:
                fn(occurrence)
            except Exception:  # a broken display callback must not stop the kubelet
                logger.exception("event subscriber failed")
        return occurrence

    def for_object(self, kind: str, name: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind and e.name == name]

    def all(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def reasons(self, kind: str | None = None, name: str | None = None) -> list[str]:
        """Reasons in order, one per aggregated event (handy in assertions)."""
        return [
            e.reason
            for e in self.all()
            if (kind is None or e.kind == kind) and (name is None or e.name == name)
        ]


def format_events(events: list[Event], now: float | None = None) -> str:
    """The Events table of `kubectl describe`."""
    if not events:
        return "Events:            <none>"
    now = time.time() if now is None else now
    rows = [
        ("Type", "Reason", "Age", "From", "Message"),
        ("----", "------", "----", "----", "-------"),
    ]
    for e in sorted(events, key=lambda e: e.last_time):
        age = format_age(now - e.last_time)
        if e.count > 1:
            age += f" (x{e.count} over {format_age(e.last_time - e.first_time)})"
        rows.append((e.type, e.reason, age, e.source, e.message))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["Events:"]
    for r in rows:
        lines.append("  " + "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    return "\n".join(line.rstrip() for line in lines)
