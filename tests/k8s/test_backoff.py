"""The crash-loop back-off in the Pod (flowcontrol's own cases: tests/peer/k8s)."""

from __future__ import annotations

import sys

import pytest

from labsupport.k8s import Pod, PodSpec
from labsupport.k8s.backoff import KUBELET_RESET_SECONDS, crash_loop_backoff
from labsupport.k8s.events import Timing

pytestmark = pytest.mark.timeout(60)


def test_crash_loop_backoff_is_in_real_seconds():
    b = crash_loop_backoff(Timing(time_scale=0.1))
    assert (b.initial_s, b.max_s, b.reset_after_s) == pytest.approx((1.0, 30.0, 60.0))
    assert KUBELET_RESET_SECONDS == 600


def test_a_container_that_ran_past_the_reset_is_restarted_at_once(tmp_path):
    """Back-off 10 s -> 10 ms, max 60 s, reset 600 s -> 0.6 s (time_scale 0.001): quick
    crashes are backed off; a 0.3 s run (past 2 x max, short of 600 s) still is; a 0.8 s run
    is past the reset, so its restart is immediate."""
    code = (
        "import os, sys, time\n"
        "p = os.path.join(os.environ['RUNS_DIR'], 'runs')\n"
        "k = len(open(p).read()) if os.path.exists(p) else 0\n"
        "open(p, 'a').write('x')\n"
        "time.sleep({2: 0.3, 3: 0.8}.get(k, 0))\n"
        "sys.exit(1)\n"
    )
    seen: list[str] = []
    spec = PodSpec([sys.executable, "-c", code], env={"RUNS_DIR": str(tmp_path)})
    timing = Timing(time_scale=0.001, backoff_max_seconds=60)
    with Pod("reset-0", spec, timing=timing, on_event=lambda e: seen.append(e.reason)) as pod:
        assert pod.wait_for(lambda p: p.restart_count >= 4, 20)
    starts = [i for i, r in enumerate(seen) if r == "Started"]
    assert len(starts) >= 5, seen
    assert "BackOff" in seen[starts[1] : starts[2]], "the second quick crash is backed off"
    assert "BackOff" in seen[starts[2] : starts[3]], f"0.3 s is short of the reset: {seen}"
    assert "BackOff" not in seen[starts[3] : starts[4]], f"ran past the reset: {seen}"
