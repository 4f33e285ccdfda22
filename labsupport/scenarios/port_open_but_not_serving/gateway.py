"""The gateway's admission limit in front of a replica: beyond it, 429 at once.

    >>> from labsupport.scenarios.port_open_but_not_serving.gateway import Gateway
    >>> gw = Gateway(limit=2)
    >>> gw.try_enter(), gw.try_enter(), gw.try_enter()
    (True, True, False)
    >>> gw.leave(); gw.try_enter()
    True
    >>> gw.admitted, gw.shed, gw.peak_in_flight, gw.max_in_flight(0.0, float("inf"))
    (3, 1, 2, 2)

A gateway sheds overload before it reaches a replica: past a concurrency limit per endpoint it
answers at once - 429 with `Retry-After` here; Envoy's circuit breakers (`max_requests`) fail
fast with a 503 - instead of queueing the request behind batches it cannot join in time. A
shed request costs the replica nothing, and the client can retry elsewhere or later.
`limit=None` admits everything (the incident's gateway).

Stand-in, said plainly: the admission decision is made in the load generator's process, just
before a request is sent (`serving.load.SteadyLoad(gate=...)`), not by a proxy on the path; what
the replica sees is the same - at most `limit` requests of this traffic in flight.
"""

from __future__ import annotations

import threading
import time


class Gateway:
    def __init__(self, limit: int | None):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise TypeError(f"the admission limit must be an int or None, got {limit!r}")
        self.limit = limit
        self.in_flight = 0
        self.peak_in_flight = 0
        self.admitted = 0
        self.shed = 0
        self.changes: list[tuple[float, int]] = []  # (time.monotonic(), in flight after)
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        """Admit one request (True) or shed it (False: the client gets a 429)."""
        with self._lock:
            if self.limit is not None and self.in_flight >= self.limit:
                self.shed += 1
                return False
            self.in_flight += 1
            self.admitted += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.changes.append((time.monotonic(), self.in_flight))
            return True

    def leave(self) -> None:
        """An admitted request ended (answered, failed or abandoned)."""
        with self._lock:
            self.in_flight -= 1
            self.changes.append((time.monotonic(), self.in_flight))

    def max_in_flight(self, t0: float, t1: float) -> int:
        """The most requests in flight at once between two `time.monotonic()` instants."""
        before = [n for t, n in self.changes if t < t0]
        during = [n for t, n in self.changes if t0 <= t < t1]
        return max([before[-1] if before else 0, *during])

    def describe(self) -> str:
        limit = "no limit" if self.limit is None else f"limit {self.limit} in flight"
        return f"gateway ({limit}): {self.admitted} admitted, {self.shed} shed with 429"
