"""The flight recorder's dump on timeout, played for gloo (which has no watchdog).

    >>> from labsupport.distributed import watchdog
    >>> watchdog.DUMP_KEY, watchdog.Recorder.MARGIN
    ('srelab/flight-recorder/dump', 0.1)

With `TORCH_NCCL_DUMP_ON_TIMEOUT=1` and a flight-recorder buffer, `Recorder.start_monitor()`
starts a thread in the rank that polls the recorder's active entries: one about to reach the
collective timeout makes the rank dump its buffer (the entry still unfinished, as NCCL's
watchdog sees it) and ask the other ranks, through the group's store, to dump theirs (NCCL's
heartbeat monitor does the same; a rank stuck outside any collective still answers from that
thread). Each rank dumps once: the state at the first failure is the evidence. A rank whose
collective fails waits a moment for the others' dumps before it leaves (`on_failure`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

DUMP_KEY = "srelab/flight-recorder/dump"
DUMPED_KEY = "srelab/flight-recorder/dumped/"
DUMP_WAIT_S = 2.0


class Recorder:
    """The flight recorder's dump on timeout: a watchdog that sees a collective about to time
    out, dumps, and asks the other ranks through the store; a monitor that dumps when asked."""

    POLL_S = 0.1
    MARGIN = 0.1  # dump this share of the timeout (at most 0.3 s) before the collective's own
    # timeout retires its entry

    def __init__(self, store, rank: int, world_size: int, result, timeout_s: float):
        from labsupport.distributed import flight

        self.store, self.rank, self.world_size, self.result = store, rank, world_size, result
        self.size, self.on_timeout = flight.settings(os.environ)
        self.timeout_s = timeout_s
        self.dumped = threading.Event()
        self.lock = threading.Lock()

    @property
    def recording(self) -> bool:
        return self.size > 0

    def dump(self) -> None:
        """Dump once: the state at the first failure is the evidence (later errors, such as a
        peer that left after its own dump, would only blur it)."""
        from labsupport.distributed import flight

        if not self.recording:
            return
        with self.lock:
            if self.dumped.is_set():
                return
            self.result.update(trace=flight.dump_entries(), trace_wall=time.time())
            self.dumped.set()
        with contextlib.suppress(Exception):
            self.store.set(DUMPED_KEY + str(self.rank), "1")

    def start_monitor(self) -> None:
        if self.recording and self.on_timeout:
            threading.Thread(target=self._watch, daemon=True, name="fr-watchdog").start()

    def _overdue(self) -> bool:
        import json

        from torch._C._distributed_c10d import _dump_fr_trace_json

        active = json.loads(_dump_fr_trace_json(True, True)).get("entries") or []
        now_ns = time.time_ns()
        limit_ns = (self.timeout_s - min(0.3, self.MARGIN * self.timeout_s)) * 1e9
        return any(
            not e.get("retired") and now_ns - int(e.get("time_created_ns", now_ns)) > limit_ns
            for e in active
        )

    def _watch(self) -> None:
        while not self.dumped.is_set():
            try:
                if self.store.check([DUMP_KEY]):
                    self.dump()
                    return
                if self._overdue():
                    self.ask_all()
                    return
            except Exception:
                return
            time.sleep(self.POLL_S)

    def settle(self, limit_s: float = 1.0) -> None:
        """Wait (briefly) until the recorder has retired every finished collective."""
        import json

        from torch._C._distributed_c10d import _dump_fr_trace_json

        if not self.recording:
            return
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if not json.loads(_dump_fr_trace_json(True, True)).get("entries"):
                return
            time.sleep(0.02)

    def ask_all(self) -> None:
        """Dump this rank's buffer and ask the other ranks to dump theirs."""
        self.dump()
        with contextlib.suppress(Exception):
            self.store.set(DUMP_KEY, str(self.rank))

    def on_failure(self) -> None:
        """A collective failed: dump (unless the watchdog did), ask the others, wait for them."""
        if not (self.recording and self.on_timeout):
            return
        self.ask_all()
        others = [DUMPED_KEY + str(r) for r in range(self.world_size) if r != self.rank]
        deadline = time.monotonic() + DUMP_WAIT_S
        while others and time.monotonic() < deadline:
            try:
                if self.store.check(others):
                    return
            except Exception:
                return
            time.sleep(0.05)
