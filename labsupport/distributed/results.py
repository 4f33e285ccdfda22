"""What a job's ranks did, as the launcher saw them and as they reported themselves.

    >>> from labsupport.distributed.results import JobRun, RankRun
    >>> r = RankRun(0, 0, False, 2.5, "done", True, "", 1.0, [], None, [(2.4, {"step": 0})], "")
    >>> run = JobRun(1, 30.0, None, 2.6, False, False, {}, [r])
    >>> run.finished, run.traces
    (True, {})
    >>> print(run.summary())
    rank 0: 1 steps reported; finished at 2.5 s

`labsupport.distributed.launch.run_job` returns a `JobRun`; both records cross processes as data
(`labsupport.wire`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from labsupport import wire


@wire.record
@dataclass
class RankRun:
    """One rank, as the launcher saw it and as it reported itself."""

    rank: int
    exit_code: int | None  # None when it had to be killed
    killed: bool  # stopped by the launcher (window over, or a peer had failed)
    ended_s: float | None  # since launch, when the process was seen gone
    phase: str  # last phase it reported: "start", "init", "run" or "done"
    ok: bool | None  # its entry returned (True), raised (False), or never got that far (None)
    error: str
    value: object  # what the entry returned (data)
    trace: list  # flight-recorder entries (dicts); [] when the recorder was off or never dumped
    trace_s: float | None  # since launch, when it dumped them
    progress: list  # (seconds since launch, dict) per progress line
    stderr: str  # its last lines
    device: str = "cpu"

    @property
    def dumped(self) -> bool:
        return self.trace_s is not None


@wire.record
@dataclass
class JobRun:
    """A job's ranks from launch until the last one was gone."""

    world_size: int
    window_s: float
    timeout_s: float | None  # the process group's collective timeout (None: torch's default)
    duration_s: float
    hung: bool  # some rank was still running at the window's end
    contained: bool
    env: dict  # what the launcher added to the ranks' environment
    ranks: list = field(default_factory=list)  # RankRun, by rank

    @property
    def traces(self) -> dict[int, list[dict]]:
        """Each rank's flight-recorder entries (only ranks that dumped)."""
        return {r.rank: r.trace for r in self.ranks if r.dumped}

    @property
    def finished(self) -> bool:
        return all(r.ok for r in self.ranks)

    def summary(self) -> str:
        lines = []
        for r in self.ranks:
            if r.ok:
                how = f"finished at {r.ended_s:.1f} s"
            elif r.killed:
                how = f"still running at {r.ended_s:.1f} s, killed by the launcher"
            else:
                error = re.sub(r"\[[^\]]*\.cc:\d+\] ", "", r.error)  # gloo's source location
                how = f"exited {r.exit_code} at {r.ended_s:.1f} s: {error[:110]}"
            steps = sum(1 for _, p in r.progress if "step" in p)
            dump = f", flight recorder dumped at {r.trace_s:.1f} s" if r.dumped else ""
            lines.append(f"rank {r.rank}: {steps} steps reported; {how}{dump}")
        return "\n".join(lines)
