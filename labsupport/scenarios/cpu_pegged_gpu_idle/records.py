"""What lab 292's server measured, as records that cross processes as data.

    >>> from labsupport.scenarios.cpu_pegged_gpu_idle.records import RequestRecord
    >>> r = RequestRecord(3, "chat", 1.0, 1.002, 1.020, 1.5, 32, 200, 120)
    >>> round(r.ttft_ms, 1), r.served
    (20.0, True)

Times are seconds from the start of the measured window (the server's `time.perf_counter()`),
durations in ms. `Run` is what `server.serve()` returns: every request, every engine step, the
event loop's lag as sampled by a task on the loop, the process's CPU use and the device's busy
share in bins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labsupport import wire

PATHS = ("prompt", "stop", "usage")  # the request field / code path that carries the text
KINDS = ("letters", "rule", "leader")  # what the long text is


@wire.record
@dataclass(frozen=True)
class Variant:
    """What a seed sets.

    kind: the long text a client sends (letters: text that lost its spaces and punctuation;
    rule: a line of '-' or '#'; leader: a run of '.' or '_'). path: where it travels (the
    prompt; a stop sequence; the prompt, counted for the key's token budget first).
    big_chars / big_at_s: the long request (more than fits) and when it arrives.
    fit_chars / fit_at_s: a request of the same text that does fit in max_model_len.
    """

    seed: int
    kind: str
    path: str
    max_model_len: int
    arrival_rate_per_s: float
    output_tokens: tuple[int, int]
    big_chars: int
    big_at_s: float
    fit_chars: int
    fit_at_s: float


@wire.record
@dataclass(frozen=True)
class Scale:
    warmup_s: float
    duration_s: float
    device: str = "auto"  # "cpu", "cuda" or "auto"


@wire.record
@dataclass(frozen=True)
class RequestRecord:
    """One request: arrival, admission (tokenized, queued), first token, finish, status."""

    request_id: int
    role: str  # "chat", "big" (cannot fit) or "fit" (long, fits)
    arrival_s: float
    admitted_s: float  # nan when rejected or never admitted
    first_token_s: float
    finish_s: float  # or when it was rejected
    n_tokens: int
    status: int  # 200, 400 (rejected), 0 (never answered)
    prompt_chars: int
    ids_digest: str = ""  # sha256 of the prompt's token ids as the server got them
    max_itl_ms: float = 0.0  # its longest wait between two tokens

    @property
    def ttft_ms(self) -> float:
        return (self.first_token_s - self.arrival_s) * 1e3

    @property
    def served(self) -> bool:
        return bool(self.status == 200 and np.isfinite(self.finish_s))


@wire.record
@dataclass
class Run:
    arm: str
    device: str
    variant: Variant
    scale: Scale
    requests: list
    step_start_s: np.ndarray  # every engine step's start
    step_ms: np.ndarray  # its own time (host work + device time)
    lag_t_s: np.ndarray  # when the loop's lag probe woke up
    lag_ms: np.ndarray  # how late it woke up
    bin_t_s: np.ndarray  # 100 ms bins
    cpu_frac: np.ndarray  # the process's CPU time / wall time in each bin (all its threads)
    busy_frac: np.ndarray  # the device's busy share in each bin (steps' device time)
    window_s: float
    hook_ms: float
    children_left: list  # processes of the server still alive after its shutdown
    tampered: list
    wall_start: float = 0.0
    wall_end: float = 0.0
    perf_elapsed_s: float = 0.0
    gpu_util: np.ndarray = field(default_factory=lambda: np.zeros(0))  # NVML, on a GPU

    def request(self, role: str) -> RequestRecord:
        return next(r for r in self.requests if r.role == role)

    @property
    def max_lag_ms(self) -> float:
        return float(self.lag_ms.max()) if self.lag_ms.size else float("nan")

    def steps_per_s(self, start_s: float, end_s: float) -> float:
        """The engine's steps per second over [start_s, end_s]."""
        n = ((self.step_start_s >= start_s) & (self.step_start_s < end_s)).sum()
        return float(n / max(end_s - start_s, 1e-9))

    @property
    def longest_step_gap_ms(self) -> float:
        gaps = np.diff(self.step_start_s) * 1e3
        return float(gaps.max()) if gaps.size else float("nan")


@wire.record
@dataclass(frozen=True)
class Capture:
    """A stack dump of the stuck server, and what was seen from outside when it was taken."""

    tool: str  # "py-spy" or "faulthandler"
    text: str
    pid: int
    cpu_percent: float  # the process's CPU over the half second before the dump
    silent_s: float  # how long its loop had printed nothing
    ptrace: str  # what ptrace permits here, in words
