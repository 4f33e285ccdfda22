"""The contained trials measure what a fix does to real workers."""

import ctypes
import os
import signal

import pytest

from labsupport import contain, portable
from labsupport.scenarios import gpu_memory_held_after_crash as scenario
from labsupport.scenarios.gpu_memory_held_after_crash import trials

V = scenario.variant(1)


@pytest.fixture(autouse=True)
def _needs_sandbox():
    if contain.sandbox().mode != "namespaces":
        pytest.skip("the trials run only in the sandbox's PID namespace")


def _armed(parent_pid):
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)


def _armed_and_checked(parent_pid):
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _group(pgid):
    os.killpg(pgid, signal.SIGKILL)


def _nothing(_):
    pass


def test_the_parent_death_signal_takes_workers_down_and_only_the_check_covers_the_race():
    armed = trials.run("worker_start", portable.portable(_armed), V)
    checked = trials.run("worker_start", portable.portable(_armed_and_checked), V)
    assert "error" not in armed and "error" not in checked, (armed, checked)
    for out in (armed, checked):
        killed = out["parent_killed"]
        assert all(killed["alive_with_parent"]) and all(g is not None for g in killed["gone_s"])
        assert killed["used_after"] == killed["used_before"]
    assert all(g is None for g in armed["parent_died_first"]["gone_s"])
    assert all(g is not None for g in checked["parent_died_first"]["gone_s"])


def test_without_a_fix_the_workers_outlive_their_parent_and_hold_the_card():
    got = trials.run("worker_start", portable.portable(_nothing), V)
    assert "error" not in got, got
    out = got["parent_killed"]
    assert out["ready"], out
    assert all(g is None for g in out["gone_s"])
    assert out["used_after"] - out["used_before"] == V.workers * V.worker_bytes


def test_killing_the_group_lets_the_server_start_again_and_spares_the_shipper():
    fixed, idle = (
        trials.run("before_restart", portable.portable(_group), V),
        trials.run("before_restart", portable.portable(_nothing), V),
    )
    assert "error" not in fixed and "error" not in idle, (fixed, idle)
    assert fixed["restarted"] and fixed["shipper_alive"] and fixed["used_after_cleanup"] == 0
    assert not idle["restarted"] and idle["shipper_alive"]
    assert "less than desired" in " ".join(idle["restart_output"])


def test_outside_the_sandbox_the_trials_refuse_to_run_hooks():
    with pytest.raises(RuntimeError, match="PID namespace"):
        trials._own_pid_namespace()
