"""Lab 297's runs of the job: as production runs it, with the lab's debug settings, with yours.

    >>> from labsupport.scenarios.collective_timeout import runs
    >>> runs.LAB_TIMEOUT_S, runs.DEBUG_ENV["TORCH_NCCL_DUMP_ON_TIMEOUT"]
    (2.0, '1')
    >>> runs.Settings.of({"timeout_s": 3, "env": {"TORCH_FR_BUFFER_SIZE": 64}}).env
    {'TORCH_FR_BUFFER_SIZE': '64'}

Each run is `labsupport.distributed.launch.run_job` of `job.serve` on two real ranks:
- `incident(plan)`: production's settings, torch's default timeout (30 min for gloo, 10 min for
  NCCL), no flight recorder; the launcher stops the job once it has reported nothing for
  `idle_s` (a hang) - what on-call has at the page.
- `wrong_interface(plan)`: `GLOO_SOCKET_IFNAME` names an interface this machine lacks.
- `fingerprints(plan)`: `TORCH_DISTRIBUTED_DEBUG=DETAIL` and the lab's short timeout.
- `recorded(plan)`: the flight recorder on, dumped on timeout, the lab's short timeout.
- `with_step(plan, step)`: a step function of yours in every rank (contained), recorder on.
- `with_settings(plan, settings)`: production's step with your timeout and environment.
`stall_s`, `report_s` and `slowest_wait_s` read the times a headline and a timeout need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labsupport.distributed import launch
from labsupport.distributed.launch import JobRun
from labsupport.scenarios.collective_timeout.job import Plan

ENTRY = "labsupport.scenarios.collective_timeout.job:serve"
LAB_TIMEOUT_S = 2.0  # the short collective timeout the lab sets for its debug runs
DEBUG_ENV = {"TORCH_FR_BUFFER_SIZE": "64", "TORCH_NCCL_DUMP_ON_TIMEOUT": "1"}
WINDOW_S = 90.0  # no run may take longer than this, whatever it is given
ABSENT_INTERFACES = ("bond0", "ens5", "eth1", "ib0", "enp65s0")


@dataclass(frozen=True)
class Settings:
    """A job's collective timeout and the environment its ranks start with."""

    timeout_s: float | None
    env: dict

    @classmethod
    def of(cls, value) -> Settings:
        """From {"timeout_s": seconds, "env": {NAME: value}} (what `job_settings` returns)."""
        if not isinstance(value, dict):
            raise TypeError(f"settings must be a dict, got {type(value).__name__}")
        timeout = value.get("timeout_s")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout_s must be a number of seconds, got {timeout!r}")
            if not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(f"timeout_s must be positive and finite, got {timeout!r}")
        env = value.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
            raise TypeError("env must be a dict of variable names to values")
        return cls(None if timeout is None else float(timeout), {k: str(v) for k, v in env.items()})


def incident(plan: Plan, *, idle_s: float = 15.0) -> JobRun:
    """Production's settings: default timeout, no recorder; stopped after `idle_s` silent."""
    return launch.run_job(ENTRY, plan, window_s=WINDOW_S, idle_s=idle_s)


def absent_interface() -> str:
    """A realistic interface name this machine does not have."""
    import os

    present = set(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else set()
    return next(name for name in ABSENT_INTERFACES if name not in present)


def wrong_interface(plan: Plan) -> JobRun:
    """The same job told to use a network interface that is not there."""
    env = {"GLOO_SOCKET_IFNAME": absent_interface()}
    return launch.run_job(ENTRY, plan, window_s=WINDOW_S, env=env, timeout_s=LAB_TIMEOUT_S)


def fingerprints(plan: Plan) -> JobRun:
    """TORCH_DISTRIBUTED_DEBUG=DETAIL: every collective's fingerprint checked across ranks."""
    env = {"TORCH_DISTRIBUTED_DEBUG": "DETAIL"}
    return launch.run_job(ENTRY, plan, window_s=WINDOW_S, env=env, timeout_s=LAB_TIMEOUT_S)


def recorded(plan: Plan) -> JobRun:
    """The flight recorder on and dumped on timeout, with the lab's short timeout."""
    return launch.run_job(ENTRY, plan, window_s=WINDOW_S, env=DEBUG_ENV, timeout_s=LAB_TIMEOUT_S)


def with_step(plan: Plan, step, *, timeout_s: float = LAB_TIMEOUT_S) -> JobRun:
    """The job with `step` (a notebook function, an exercise ref) as every rank's step."""
    from labsupport import portable

    return launch.run_job(
        ENTRY, plan, portable.sendable(step), window_s=WINDOW_S, env=DEBUG_ENV,
        timeout_s=timeout_s,
    )  # fmt: skip


def with_settings(plan: Plan, settings, *, idle_s: float = 30.0) -> JobRun:
    """Production's step with `settings` (a Settings or the dict `job_settings` returns).
    The ranks run contained: the environment is yours."""
    s = settings if isinstance(settings, Settings) else Settings.of(settings)
    return launch.run_job(
        ENTRY, plan, window_s=WINDOW_S, env=s.env, timeout_s=s.timeout_s, contained=True,
        idle_s=idle_s,
    )  # fmt: skip


def steps_done(run: JobRun) -> dict[int, int]:
    """Steps each rank reported finished."""
    return {r.rank: sum(1 for _, p in r.progress if "step" in p) for r in run.ranks}


def stall_s(run: JobRun) -> float | None:
    """Seconds since launch of the last progress any rank reported (None: none at all)."""
    stamps = [t for r in run.ranks for t, _ in r.progress]
    return max(stamps) if stamps else None


def report_s(run: JobRun) -> float | None:
    """Seconds since launch when every rank had exited by itself with its flight recorder
    dumped: the job said what went wrong. None when it never did (hung, or no dump)."""
    ok = all(r.dumped and not r.killed and r.exit_code for r in run.ranks)
    return max(r.ended_s for r in run.ranks) if ok else None


def slowest_wait_s(run: JobRun) -> float:
    """The longest gap between two steps a rank reported in a run that finished: the longest
    time a healthy job keeps a rank waiting (rank 0's checkpoint, seen from the others)."""
    gaps = []
    for r in run.ranks:
        stamps = [t for t, p in r.progress if "step" in p]
        gaps += [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return round(max(gaps), 3) if gaps else 0.0
