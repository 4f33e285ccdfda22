"""Faults injected into the serving stack on purpose, at start or at run time.

    >>> from labsupport.serving.faults import FaultController
    >>> faults = FaultController.from_specs(["wedged_engine", "slow_start=2.5"])
    >>> faults.is_active("wedged_engine"), faults.value("slow_start")
    (True, 2.5)
    >>> faults.disable("wedged_engine"); faults.is_active("wedged_engine")
    False

At start: `srelab serve --fault NAME[=VALUE]` (repeatable). At run time:
`POST /admin/fault {"name": ..., "value": ..., "enabled": true}` on the server, with the run's
admin token (see `admin`). Each fault is the real mechanism, not a flag a probe could read: a
thread really holds the GIL, the event loop really blocks in `time.sleep`, the engine step
really never returns. Nothing outside the admin endpoint says which fault is on.

Values are bounded (`FaultSpec.low`/`high`, finite numbers only): a loop blocked for 1e9 s would
make the server deaf to SIGTERM for good, a NaN would poison every comparison made with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class FaultSpec:
    name: str
    default: float | None  # the value used when none is given (None: the fault takes none)
    doc: str
    low: float = 0.0  # the bounds of VALUE, inclusive (faults that take one)
    high: float = 0.0

    def check(self, value) -> float | None:
        """The value as a float within bounds; ValueError saying why not."""
        if value is None:
            return None
        if self.default is None:
            raise ValueError(f"fault {self.name!r} takes no value, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"fault {self.name!r}: value must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise ValueError(
                f"fault {self.name!r}: value must be in [{self.low:g}, {self.high:g}], got {value}"
            )
        return value


FAULTS: dict[str, FaultSpec] = {
    f.name: f
    for f in [
        FaultSpec(
            "slow_start",
            10.0,
            "sleep VALUE seconds after loading, before binding the port",
            high=600.0,
        ),
        FaultSpec(
            "gil_busy_loop",
            0.0,
            "a thread spinning in Python; VALUE > 0: it holds the GIL in C calls of VALUE ms",
            high=5000.0,
        ),
        FaultSpec(
            "blocked_event_loop",
            5.0,
            "the event loop runs time.sleep(VALUE) over and over",
            high=60.0,
        ),
        FaultSpec("wedged_engine", None, "the engine step never completes; /health still says 200"),
        FaultSpec("no_cancel_on_disconnect", None, "keep generating after the client went away"),
        FaultSpec(
            "abort_on_sigterm", None, "on SIGTERM abort in-flight requests, whatever the handler"
        ),
        FaultSpec("leak_kv_on_abort", None, "aborted requests never give their KV blocks back"),
        FaultSpec(
            "no_input_validation",
            None,
            "token ids reach the model unchecked (an id >= vocab kills the engine for good)",
        ),
    ]
}


def parse_spec(spec: str) -> tuple[str, float | None]:
    """'slow_start=5' -> ('slow_start', 5.0); 'wedged_engine' -> ('wedged_engine', None)."""
    name, _, raw = spec.partition("=")
    name = name.strip()
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    try:
        value = float(raw) if raw.strip() else None
    except ValueError:
        raise ValueError(f"fault {name!r}: value must be a number, got {raw!r}") from None
    return name, FAULTS[name].check(value)


class FaultController:
    def __init__(self):
        self._active: dict[str, float | None] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_task: asyncio.Task | None = None
        self._gil_thread: threading.Thread | None = None

    @classmethod
    def from_specs(cls, specs: list[str] | None) -> FaultController:
        faults = cls()
        for spec in specs or []:
            faults.enable(*parse_spec(spec))
        return faults

    # -- state -------------------------------------------------------------------------------
    def is_active(self, name: str) -> bool:
        return name in self._active

    def value(self, name: str) -> float | None:
        v = self._active.get(name)
        return FAULTS[name].default if v is None else v

    def active(self) -> dict[str, float | None]:
        return {name: self.value(name) for name in list(self._active)}

    def enable(self, name: str, value: float | None = None) -> None:
        """Switch `name` on (ValueError for an unknown fault or a value out of its bounds)."""
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        value = FAULTS[name].check(value)
        with self._lock:
            self._active[name] = value
        if name == "gil_busy_loop":
            self._start_gil_thread()
        elif name == "blocked_event_loop":
            self._start_loop_task()

    def disable(self, name: str) -> None:
        with self._lock:
            self._active.pop(name, None)
        if name == "gil_busy_loop" and self._gil_thread is not None:
            self._gil_thread.join(5.0)
            self._gil_thread = None

    # -- lifecycle -----------------------------------------------------------------------------
    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give loop-bound faults their loop (call once the server's loop runs)."""
        self._loop = loop
        if self.is_active("blocked_event_loop"):
            self._start_loop_task()

    def shutdown(self) -> None:
        """Stop the fault threads and tasks."""
        for name in ("gil_busy_loop", "blocked_event_loop"):
            self.disable(name)
        if self._loop_task is not None:
            self._loop_task.cancel()

    # -- the mechanisms ------------------------------------------------------------------------
    def _start_gil_thread(self) -> None:
        if self._gil_thread is None or not self._gil_thread.is_alive():
            self._gil_thread = threading.Thread(
                target=self._gil_busy_loop, name="srelab-fault-gil", daemon=True
            )
            self._gil_thread.start()

    def _gil_busy_loop(self) -> None:
        hold_ms = self.value("gil_busy_loop") or 0.0
        n = _iterations_for(hold_ms / 1000.0) if hold_ms > 0 else 0
        x = 0
        while self.is_active("gil_busy_loop"):
            if n:
                # one C call that never lets the GIL go: every other thread stops for hold_ms
                x += sum(range(n))
            else:
                # pure Python: the interpreter hands the GIL over only every switch interval
                for _ in range(10_000):
                    x += 1

    def _start_loop_task(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # attach_loop starts it later
        if self._loop_task is not None and not self._loop_task.done():
            return

        def start() -> None:
            self._loop_task = loop.create_task(self._blocked_event_loop())

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            start()
        else:
            loop.call_soon_threadsafe(start)

    async def _blocked_event_loop(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while self.is_active("blocked_event_loop"):
                # BUG (on purpose): a blocking call on the event loop; nothing else runs meanwhile
                time.sleep(self.value("blocked_event_loop") or 0.0)
                await asyncio.sleep(0.05)


_CALIBRATION: dict[str, float] = {}


def _iterations_for(seconds: float) -> int:
    """How many `sum(range(n))` iterations take about `seconds` on this machine."""
    if "per_s" not in _CALIBRATION:
        n, best = 200_000, float("inf")
        for _ in range(7):  # the fastest run: the others were preempted on a busy machine
            t0 = time.perf_counter()
            sum(range(n))
            best = min(best, time.perf_counter() - t0)
        _CALIBRATION["per_s"] = n / max(best, 1e-6)
    return max(1, int(seconds * _CALIBRATION["per_s"]))
