"""Runs of the job's loader under a given /dev/shm, in a fresh process, measured from outside.

    >>> from labsupport.scenarios.dataloader_bus_error import runs
    >>> from labsupport.scenarios.dataloader_bus_error.loader import LoaderConfig
    >>> cfg = LoaderConfig((3, 64, 64), "uint8", batch_size=4, num_workers=2, prefetch_factor=2)
    >>> [r] = runs.run([runs.Arm("small", cfg, room_bytes=8 * 2**20, steps=6)])
    >>> r.completed, r.room_bytes == 8 * 2**20, r.peak_bytes > 0
    (True, True, True)

An `Arm` is one run: the loader's settings, the room (the size of the tmpfs mounted on
/dev/shm, as `docker run --shm-size` or a Kubernetes emptyDir gives it), what other processes
already left in it (real `multiprocessing.shared_memory` segments of a process killed with
SIGKILL, as an OOM kill leaves them), how many steps. `run(arms)` runs them one after another
in one fresh process that has its own mount namespace (`labsupport.linux.mounts`), each on a
fresh tmpfs, and returns a `LoaderRun` per arm: the outcome, `df` and `ls` of /dev/shm before
the loader started, and the used bytes sampled every 2 ms while it ran. Where this machine
allows no private mounts, a labelled stand-in runs instead (`STAND_IN`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from labsupport import isolate, progress, wire
from labsupport.linux import mounts
from labsupport.scenarios.dataloader_bus_error.loader import LoaderConfig, Pace, iterate

SHM = "/dev/shm"
STAND_IN = (
    "stand-in: this machine allows no private mount namespace, so the loader uses the real "
    "/dev/shm and a watcher stops it when it uses more than the room would hold"
)
MAX_POINTS = 400


@wire.record
@dataclass(frozen=True)
class Arm:
    name: str
    loader: LoaderConfig
    room_bytes: int
    found_bytes: tuple = ()  # sizes of segments a killed process left in /dev/shm
    steps: int = 24
    pace: Pace = field(default_factory=Pace)
    sharing_strategy: str = "file_descriptor"  # torch.multiprocessing's, as the job sets it
    cache_samples: bool = False  # workers also keep each sample in shared memory (unreserved)


@wire.record
@dataclass(frozen=True)
class LoaderRun:
    arm: str
    loader: LoaderConfig
    room_bytes: int
    steps_wanted: int
    steps_done: int
    wait_s: float  # time the training loop waited for a batch (after the first)
    elapsed_s: float
    error_type: str | None
    error: str | None
    used_before_bytes: int  # df's Used before the loader started
    listing_before: tuple  # (name, bytes) as ls shows them before the loader started
    timeline: tuple  # (t_s, used_bytes) while it ran
    peak_bytes: int  # the most /dev/shm in use while it ran (leftovers included)
    mode: str  # "root" | "user namespace" | "stand-in"
    pace: Pace = field(default_factory=Pace)
    sharing_strategy: str = "file_descriptor"

    @property
    def completed(self) -> bool:
        return self.error_type is None and self.steps_done == self.steps_wanted

    @property
    def loader_peak_bytes(self) -> int:
        """Peak use by the loader itself: the peak less what was there before it started."""
        return max(0, self.peak_bytes - self.used_before_bytes)

    @property
    def idle_fraction(self) -> float:
        """Share of the steady run the training loop spent waiting for data."""
        steady = (self.steps_done - 1) * self.pace.step_s + self.wait_s
        return 0.0 if steady <= 0 else min(1.0, self.wait_s / steady)

    def summary(self) -> str:
        mib = 2**20
        head = f"{self.arm}: {self.loader.describe()} in a {self.room_bytes / mib:.0f} MiB /dev/shm"
        if self.completed:
            return (
                f"{head}: {self.steps_done}/{self.steps_wanted} steps, peak "
                f"{self.peak_bytes / mib:.1f} MiB used, waited for data "
                f"{100 * self.idle_fraction:.0f}% of the time"
            )
        return (
            f"{head}: died after {self.steps_done}/{self.steps_wanted} steps "
            f"({self.error_type}); peak {self.peak_bytes / mib:.1f} MiB used"
        )

    def evidence(self) -> dict:
        """What on-call can collect about this run, as plain values."""
        return {
            "room_bytes": self.room_bytes,
            "used_before_bytes": self.used_before_bytes,
            "listing_before": [list(x) for x in self.listing_before],
            "loader": self.loader.as_dict(),
            "timeline": [list(x) for x in self.timeline],
            "steps_done": self.steps_done,
            "error": self.error or "",
        }


def mode() -> str:
    """How runs get their /dev/shm here: "root", "user namespace" or "stand-in"."""
    found = mounts.probe()
    return "stand-in" if found.mode == "none" else found.mode


def run(arms: list[Arm], *, timeout_s: float = 120.0, echo=None) -> list[LoaderRun]:
    """Run `arms` in one fresh process; RuntimeError if the process itself failed."""
    r = isolate.run_function(
        "labsupport.scenarios.dataloader_bus_error.runs:_workload",
        list(arms),
        mode() == "stand-in",
        timeout_s=timeout_s,
        echo=echo,
    )
    if not r.ok:
        raise RuntimeError(f"the loader runs failed: {r.error}\n{r.stderr[-2000:]}")
    return list(r.value)


# ---- inside the fresh process -----------------------------------------------------------
def _workload(arms: list[Arm], stand_in: bool) -> list[LoaderRun]:
    how = "stand-in" if stand_in else mounts.enter()  # before torch starts any thread
    out = []
    for i, arm in enumerate(arms):
        out.append(_run_arm(arm, how))
        progress.report(i + 1, len(arms))
    return out


_LEFTOVER = r"""
import sys
from multiprocessing import shared_memory
held = []
for size in map(int, sys.argv[1:]):
    seg = shared_memory.SharedMemory(create=True, size=size)
    seg.buf[::4096] = bytes(len(range(0, size, 4096)))  # touch every page: tmpfs allocates
    held.append(seg)
print("ready", flush=True)
sys.stdin.read()
"""


def _leave_segments(sizes: tuple) -> list[str]:
    """A process creates shared-memory segments and is SIGKILLed with everything it started:
    its segments stay (nothing ran to unlink them). The names it left."""
    before = {name for name, _ in mounts.listing(SHM)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _LEFTOVER, *map(str, sizes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the process that leaves segments behind did not start")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return sorted({name for name, _ in mounts.listing(SHM)} - before)


def _downsample(samples: list[tuple[float, int]]) -> tuple:
    if len(samples) <= MAX_POINTS:
        return tuple((round(t, 4), b) for t, b in samples)
    step = len(samples) / MAX_POINTS
    picked = {int(i * step) for i in range(MAX_POINTS)}
    peak = max(range(len(samples)), key=lambda i: samples[i][1])
    picked |= {peak, len(samples) - 1}
    return tuple((round(samples[i][0], 4), samples[i][1]) for i in sorted(picked))


def _run_arm(arm: Arm, how: str) -> LoaderRun:
    import torch.multiprocessing

    torch.multiprocessing.set_sharing_strategy(arm.sharing_strategy)
    made: list[str] = []
    if how == "stand-in":
        return _run_stand_in(arm)
    try:
        mounts.unmount(SHM)  # the previous arm's tmpfs: gone once nothing maps it
    except OSError:
        pass
    mounts.mount_tmpfs(SHM, arm.room_bytes)
    if arm.found_bytes:
        made = _leave_segments(arm.found_bytes)
    before = mounts.usage(SHM)
    listing = tuple(mounts.listing(SHM))
    with mounts.Sampler(SHM) as sampler:
        outcome = iterate(arm.loader, arm.steps, arm.pace, cache=arm.cache_samples)
    del made
    return LoaderRun(
        arm.name, arm.loader, before.size_bytes, arm.steps, outcome.steps_done, outcome.wait_s,
        outcome.elapsed_s, outcome.error_type, outcome.error, before.used_bytes, listing,
        _downsample(sampler.samples), sampler.peak_bytes, how, arm.pace, arm.sharing_strategy,
    )  # fmt: skip


def _run_stand_in(arm: Arm) -> LoaderRun:
    """The real /dev/shm, a watcher that kills the workers once the room would be full."""
    import threading

    import psutil

    made = _leave_segments(arm.found_bytes) if arm.found_bytes else []
    base = mounts.usage(SHM).used_bytes - sum(
        size for name, size in mounts.listing(SHM) if name in made
    )
    listing = tuple(x for x in mounts.listing(SHM) if x[0] in made)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.002):
            if mounts.usage(SHM).used_bytes - base > arm.room_bytes:
                for child in psutil.Process().children():
                    child.send_signal(signal.SIGKILL)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        with mounts.Sampler(SHM) as sampler:
            watcher.start()
            outcome = iterate(arm.loader, arm.steps, arm.pace, cache=arm.cache_samples)
            stop.set()
    finally:
        for name in made:
            try:
                os.unlink(os.path.join(SHM, name))
            except OSError:
                pass
    timeline = tuple((t, max(0, b - base)) for t, b in _downsample(sampler.samples))
    peak = max(0, sampler.peak_bytes - base)
    used_before = sum(size for _, size in listing)
    return LoaderRun(
        arm.name, arm.loader, arm.room_bytes, arm.steps, outcome.steps_done, outcome.wait_s,
        outcome.elapsed_s, outcome.error_type, outcome.error, used_before, listing, timeline,
        min(peak, arm.room_bytes), "stand-in", arm.pace, arm.sharing_strategy,
    )  # fmt: skip


def timed(arms: list[Arm]) -> float:
    """Rough seconds these arms take (for a progress bar)."""
    return 3.0 + sum(1.0 + a.pace.warmup_s + a.steps * a.pace.step_s for a in arms)


__all__ = ["Arm", "LoaderRun", "STAND_IN", "mode", "run", "timed", "time"]
