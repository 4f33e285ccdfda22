"""The simulated server judges SIGTERM handlers as a rollout would."""

from __future__ import annotations

import asyncio
import time

import pytest

from labsupport.scenarios.errors_during_rollout.handler_trial import (
    TrialState,
    handler_problems,
    run_trial,
)
from labsupport.serving.shutdown import abort_in_flight, drain

pytestmark = pytest.mark.timeout(60)


async def _ignore(ctx):
    await asyncio.sleep(3600)


async def _fixed_sleep(ctx):
    ctx.stop_accepting()
    await asyncio.sleep(ctx.drain_timeout_s)


async def _no_budget(ctx):
    ctx.stop_accepting()
    await ctx.wait_idle(None)


async def _stub(ctx):
    raise NotImplementedError("Exercise on_sigterm: write your code here")


def _polling(ctx):  # a plain function that only flips readiness: returns at once
    ctx.stop_accepting()


def test_the_builtin_drain_has_no_problem():
    assert handler_problems(drain) == []


@pytest.mark.parametrize(
    "handler,expected",
    [
        (abort_in_flight, "aborted 3 stream(s)"),
        (_ignore, "did not return within 3 s"),
        (_fixed_sleep, "not for a fixed time"),
        (_no_budget, "stop waiting at the drain budget"),
        (_stub, "raised NotImplementedError"),
        (_polling, "before the last stream ended"),
    ],
)
def test_broken_handlers_are_named(handler, expected):
    problems = handler_problems(handler)
    assert any(expected in p for p in problems), problems


def test_state_counts_streams_by_schedule_and_aborts():
    state = TrialState([0.05, None])
    assert state.in_flight == 2 and state.accepting
    time.sleep(0.1)
    assert state.in_flight == 1
    assert state.abort_all() == 1 and state.in_flight == 0
    state.accepting = False
    assert state.stopped_accepting_s is not None and not state.accepting


def test_trial_reports_when_the_handler_returned():
    trial = run_trial(drain, "finishing", [0.1, 0.3], drain_timeout_s=2.0, limit_s=3.0)
    assert trial.error is None and 0.25 <= trial.returned_s <= 1.0
    assert trial.stopped_accepting_s < 0.1 and trial.aborted == {}
