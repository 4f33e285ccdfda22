"""Lab 290's server logs: every collection (gc.callbacks) and asyncio's slow-callback lines.

    >>> import gc
    >>> from labsupport.scenarios.p99_spikes.monitors import PauseLog
    >>> log = PauseLog()
    >>> log.install()
    >>> _ = gc.collect()
    >>> log.remove()
    >>> log.entries(0.0, -1e18, 1e18)[-1].generation
    2

`PauseLog` stores into arrays, so recording allocates nothing the collector tracks.
`SlowCallbackLog` records every callback that held the asyncio loop for 20 ms or more, with
the task it ran: what debug mode's "Executing <Task ...> took N seconds" lines say.
"""

from __future__ import annotations

import asyncio
import gc
import time
from array import array

from labsupport.scenarios.p99_spikes.records import Collection, SlowCallback


class PauseLog:
    """Every collection through `gc.callbacks`, stored in arrays (recording allocates nothing
    the collector tracks, so it does not make collections longer)."""

    def __init__(self):
        self.generation, self.start = array("b"), array("d")
        self.duration, self.collected = array("d"), array("q")
        self._t0 = 0.0
        self._cb = self._callback

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.duration.append(time.perf_counter() - self._t0)
            self.start.append(self._t0)
            self.generation.append(info["generation"])
            self.collected.append(info["collected"])

    def install(self) -> None:
        gc.callbacks.append(self._cb)

    def installed(self) -> bool:
        return self._cb in gc.callbacks

    def remove(self) -> None:
        if self._cb in gc.callbacks:
            gc.callbacks.remove(self._cb)

    def full_since(self, t: float) -> bool:
        return any(g == 2 and s >= t for g, s in zip(self.generation, self.start, strict=True))

    def first_full_ms(self, since: float) -> float:
        """Duration of the first generation-2 collection started at `since` or later (nan)."""
        for g, s, d in zip(self.generation, self.start, self.duration, strict=True):
            if g == 2 and s >= since:
                return d * 1e3
        return float("nan")

    def entries(self, origin: float, since_s: float, until_s: float) -> list[Collection]:
        out = []
        for g, s, d, c in zip(
            self.generation, self.start, self.duration, self.collected, strict=True
        ):
            if since_s <= s - origin <= until_s:
                out.append(Collection(s - origin, d * 1e3, int(g), int(c)))
        return out


class SlowCallbackLog:
    """Every callback that held the event loop for `threshold_s` or more: (start, duration, task).

    What asyncio's debug mode logs ("Executing <Task name='...'> took N seconds", with
    `loop.slow_callback_duration`), recorded the way production monitors do it without debug
    mode's cost (aiodebug's `log_slow_callbacks`): `asyncio.Handle._run` is timed while
    installed. The task is the name of the task whose step the callback ran, else the
    callback's own name.
    """

    def __init__(self, threshold_s: float):
        self.threshold_s = threshold_s
        self.rows: list[tuple[float, float, str]] = []  # (start perf_counter, seconds, task)
        self._original = None
        log = self

        def _run(handle):
            start = time.perf_counter()
            try:
                return log._original(handle)
            finally:
                seconds = time.perf_counter() - start
                if seconds >= log.threshold_s:
                    log.rows.append((start, seconds, _task_name(handle)))

        self._wrapper = _run

    def install(self) -> None:
        self._original = asyncio.events.Handle._run
        asyncio.events.Handle._run = self._wrapper

    def installed(self) -> bool:
        return asyncio.events.Handle._run is self._wrapper

    def remove(self) -> None:
        if self._original is not None and self.installed():
            asyncio.events.Handle._run = self._original

    def entries(self, origin: float, since_s: float, until_s: float) -> list[SlowCallback]:
        out = []
        for start, seconds, task in self.rows:
            if since_s <= start - origin <= until_s:
                out.append(SlowCallback(start - origin, seconds * 1e3, task))
        return out


def _task_name(handle) -> str:
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return owner.get_name()
    return getattr(callback, "__qualname__", repr(callback))[:60]
