"""Try a SIGTERM handler on a simulated server in a second, before a rollout takes seconds.

    >>> from labsupport.scenarios.errors_during_rollout.handler_trial import handler_problems
    >>> from labsupport.serving.shutdown import abort_in_flight, drain
    >>> handler_problems(drain)
    []
    >>> for problem in handler_problems(abort_in_flight):
    ...     print(problem)
    it never stopped accepting new requests (readiness stays 200)
    it aborted 3 stream(s) that would have finished within the drain budget

The handler gets the real `serving.shutdown.ShutdownContext`, wired to a stand-in server whose
streams end on a schedule (the real server's state is an engine and its HTTP requests). Three
scenarios, each judged as the rollout would judge it:
- streams that end within the drain budget: it stops accepting at once, aborts none, and
  returns once they are done (not long after: the pod's GPU is held until it exits);
- streams that never end: it returns by the end of the drain budget (after that the kubelet
  would SIGKILL the pod mid-stream anyway);
- nothing in flight: it stops accepting and returns at once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from dataclasses import dataclass, field

from labsupport import wire

SLACK_S = 0.7  # how late a handler may return after the moment it should (a busy CPU)


class TrialState:
    """What ShutdownContext drives: `accepting`, `in_flight`, `wait_idle`, `abort_all`."""

    def __init__(self, stream_ends_s: list[float | None]):
        self.t0 = time.monotonic()
        self.ends = list(stream_ends_s)  # seconds after t0; None: never ends
        self.aborted_at: dict[int, float] = {}
        self.stopped_accepting_s: float | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    @property
    def accepting(self) -> bool:
        return self.stopped_accepting_s is None

    @accepting.setter
    def accepting(self, value: bool) -> None:
        if not value and self.stopped_accepting_s is None:
            self.stopped_accepting_s = self.now()

    def _live(self) -> list[int]:
        t = self.now()
        return [
            i
            for i, end in enumerate(self.ends)
            if i not in self.aborted_at and (end is None or end > t)
        ]

    @property
    def in_flight(self) -> int:
        return len(self._live())

    async def wait_idle(self, timeout_s: float | None = None) -> bool:
        deadline = None if timeout_s is None else self.now() + max(0.0, timeout_s)
        while self.in_flight and (deadline is None or self.now() < deadline):
            await asyncio.sleep(0.005)
        return self.in_flight == 0

    def abort_all(self) -> int:
        live = self._live()
        for i in live:
            self.aborted_at[i] = self.now()
        return len(live)


@wire.record
@dataclass
class Trial:
    scenario: str
    drain_timeout_s: float
    stream_ends_s: list
    returned_s: float | None = None  # None: it did not return within the limit
    stopped_accepting_s: float | None = None
    aborted: dict = field(default_factory=dict)  # stream index -> when
    error: str | None = None


def run_trial(handler, scenario: str, stream_ends_s, drain_timeout_s: float, limit_s: float):
    """Call handler(ctx) on its own event loop and thread; give up after limit_s."""
    from labsupport.serving.shutdown import ShutdownContext

    state = TrialState(stream_ends_s)
    trial = Trial(scenario, drain_timeout_s, list(stream_ends_s))

    async def call() -> None:
        result = handler(ShutdownContext(state, drain_timeout_s))
        if inspect.isawaitable(result):
            await result

    def target() -> None:
        try:
            asyncio.run(asyncio.wait_for(call(), limit_s))
            trial.returned_s = state.now()
        except asyncio.TimeoutError:
            pass
        except Exception as exc:  # the learner's bug, reported as a problem
            trial.error = f"{type(exc).__name__}: {exc}"

    quiet = logging.getLogger("srelab.shutdown")  # ctx.log() lines: a trial is not a shutdown
    was_disabled, quiet.disabled = quiet.disabled, True
    thread = threading.Thread(target=target, name="srelab-handler-trial", daemon=True)
    try:
        thread.start()
        thread.join(limit_s + 1.0)  # a handler that blocks the thread (time.sleep) is left there
    finally:
        quiet.disabled = was_disabled
    trial.stopped_accepting_s = state.stopped_accepting_s
    trial.aborted = dict(state.aborted_at)
    return trial


FINISHING_ENDS_S = (0.2, 0.5, 0.8)
BUDGET_S = 2.0  # ctx.drain_timeout_s where the streams end or nothing is in flight
ENDLESS_BUDGET_S = 0.6  # ctx.drain_timeout_s where the streams never end
LIMITS_S = {"finishing": 3.0, "endless": 2.0, "idle": 2.0}  # then the trial gives up


def run_trials(handler) -> list[Trial]:
    """The three scenarios, raw: streams that finish, streams that never end, nothing in flight.

    handler: a callable, or a learner's ref (loaded here: call this in a contained process).
    """
    if hasattr(handler, "load"):
        handler = handler.load()
    ends = list(FINISHING_ENDS_S)
    return [
        run_trial(handler, "finishing", ends, BUDGET_S, LIMITS_S["finishing"]),
        run_trial(handler, "endless", [None, None], ENDLESS_BUDGET_S, LIMITS_S["endless"]),
        run_trial(handler, "idle", [], BUDGET_S, LIMITS_S["idle"]),
    ]


def handler_problems(handler) -> list[str]:
    """What the handler does wrong on the three scenarios ([] when nothing).

    A learner's handler (an exercise ref) runs in a contained process; the verdict is made
    here from what that process measured.
    """
    from labsupport import isolate

    if isolate.carries_learner_code(handler):
        r = isolate.run_function(
            "labsupport.scenarios.errors_during_rollout.handler_trial:run_trials",
            handler,
            timeout_s=40,
        )
        if not r.ok:
            return [f"the trial of your handler failed: {r.error}"]
        trials = r.value
    else:
        trials = run_trials(handler)
    return judge(trials)


def judge(trials: list[Trial]) -> list[str]:
    """Problems, from the three trials' measurements."""
    finishing, endless, idle = trials
    ends = list(FINISHING_ENDS_S)
    if finishing.error:
        return [f"it raised {finishing.error}"]
    problems = []
    if finishing.returned_s is None:
        return [
            f"it did not return within {LIMITS_S['finishing']:g} s while every stream ended "
            f"within {ends[-1]} s"
        ]
    if finishing.stopped_accepting_s is None:
        problems.append("it never stopped accepting new requests (readiness stays 200)")
    elif finishing.stopped_accepting_s > ends[0]:
        problems.append(
            f"it stopped accepting only after {finishing.stopped_accepting_s:.2f} s: "
            "stop first, then wait"
        )
    early = [i for i, t in finishing.aborted.items() if t < ends[int(i)]]
    if early:
        problems.append(
            f"it aborted {len(early)} stream(s) that would have finished within the drain budget"
        )
    elif finishing.returned_s < ends[-1] - 0.05:
        problems.append(
            f"it returned after {finishing.returned_s:.2f} s, before the last stream ended "
            f"({ends[-1]} s): the server aborts whatever is still in flight when it returns"
        )
    elif finishing.returned_s > ends[-1] + SLACK_S:
        problems.append(
            f"it returned {finishing.returned_s:.2f} s after SIGTERM although the last stream "
            f"ended at {ends[-1]} s: wait until nothing is in flight, not for a fixed time"
        )
    if endless.error:
        problems.append(f"with streams that never end it raised {endless.error}")
    elif endless.returned_s is None or endless.returned_s > ENDLESS_BUDGET_S + SLACK_S:
        took = (
            f"did not return within {LIMITS_S['endless']:g} s"
            if endless.returned_s is None
            else (f"returned after {endless.returned_s:.2f} s")
        )
        problems.append(
            f"with streams that never end and ctx.drain_timeout_s = {ENDLESS_BUDGET_S:g} it "
            f"{took}: stop "
            "waiting at the drain budget, or the kubelet SIGKILLs the pod mid-stream"
        )
    if idle.error:
        problems.append(f"with nothing in flight it raised {idle.error}")
    elif idle.returned_s is None or idle.returned_s > SLACK_S:
        problems.append("with nothing in flight it did not return at once")
    return problems
