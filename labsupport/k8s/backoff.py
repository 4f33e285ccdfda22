"""The kubelet's crash-loop back-off: client-go's `flowcontrol.Backoff`, as the kubelet sets it.

    >>> from labsupport.k8s.backoff import Backoff, crash_loop_backoff
    >>> now = [0.0]
    >>> b = Backoff(initial_s=10, max_s=300, clock=lambda: now[0])
    >>> b.is_in_backoff_since("c", 0.0)   # the first exit: no entry, restart at once
    False
    >>> b.next("c", 0.0); b.get("c")
    10
    >>> b.next("c", 0.0); b.next("c", 0.0); b.get("c")
    40
    >>> from labsupport.k8s.events import Timing
    >>> crash_loop_backoff(Timing(time_scale=1)).expired(700.0, 0.0)   # ran > 600 s: reset
    True

A port of k8s.io/client-go/util/flowcontrol/backoff.go (Get, Next, Reset,
IsInBackOffSince, IsInBackOffSinceUpdate, GC; no jitter, as `NewBackOff` has none). Its
default expiry resets an entry after 2 x max. The kubelet overrides that in NewMainKubelet
(pkg/kubelet/kubelet.go: `klet.crashLoopBackOff.HasExpiredFunc = ... eventTime.Sub(lastUpdate)
> 600*time.Second`): a container's back-off resets after 600 s whatever the maximum, and the
initial delay is clamped to the maximum when a node sets a maximum below 10 s. How the kubelet
uses it (kuberuntime_manager.go doBackOff): on an exited container, eventTime is its FinishedAt;
while `now - FinishedAt < Get(key)` it waits (CrashLoopBackOff), else it calls Next(key,
FinishedAt) and restarts. All times are seconds on `clock` (real seconds in a lab).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

KUBELET_RESET_SECONDS = 600.0  # pkg/kubelet/kubelet.go HasExpiredFunc, whatever the maximum


@dataclass
class _Entry:
    backoff: float
    last_update: float


class Backoff:
    """flowcontrol.Backoff: per-key exponential back-off with a maximum and an expiry.

    reset_after_s: the expiry (`HasExpiredFunc`); None means client-go's default, 2 x max_s.
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        reset_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.initial_s, self.max_s, self.reset_after_s = initial_s, max_s, reset_after_s
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def expired(self, event_time: float, last_update: float) -> bool:
        """hasExpired: the entry is stale at event_time and the factor restarts."""
        limit = 2 * self.max_s if self.reset_after_s is None else self.reset_after_s
        return event_time - last_update > limit

    def get(self, key: str) -> float:
        """The current back-off (0 when there is no entry)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.backoff if entry else 0

    def next(self, key: str, event_time: float) -> None:
        """Move to the next mark: the initial delay for a new or expired entry, else double it
        (capped at the maximum); the entry's lastUpdate becomes now."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self.expired(event_time, entry.last_update):
                entry = self._entries[key] = _Entry(self.initial_s, 0.0)
            else:
                entry.backoff = min(entry.backoff * 2, self.max_s)
            entry.last_update = self.clock()

    def reset(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def is_in_backoff_since(self, key: str, event_time: float) -> bool:
        """True while less than the current back-off has passed since event_time."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self.expired(event_time, entry.last_update):
                return False
            return self.clock() - event_time < entry.backoff

    def is_in_backoff_since_update(self, key: str, event_time: float) -> bool:
        """True while event_time is less than the current back-off after the last update."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self.expired(event_time, entry.last_update):
                return False
            return event_time - entry.last_update < entry.backoff

    def gc(self) -> None:
        """Drop the entries that have expired by now."""
        with self._lock:
            now = self.clock()
            for key in [k for k, e in self._entries.items() if self.expired(now, e.last_update)]:
                del self._entries[key]

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._entries


def crash_loop_backoff(timing, clock: Callable[[], float] = time.monotonic) -> Backoff:
    """The kubelet's container back-off in real seconds: base 10 s, max 300 s (scaled by
    `timing`), the base clamped to the max, reset after 600 manifest seconds."""
    max_s = timing.real_s(timing.backoff_max_seconds)
    base_s = min(timing.real_s(timing.backoff_base_seconds), max_s)
    reset_s = timing.real_s(KUBELET_RESET_SECONDS)
    return Backoff(base_s, max_s, reset_after_s=reset_s, clock=clock)
