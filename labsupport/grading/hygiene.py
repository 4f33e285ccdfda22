"""What a test may not leave behind: processes, listening ports, temp entries, GPU memory.

    >>> from labsupport.grading import hygiene
    >>> before = hygiene.snapshot()
    >>> hygiene.leftovers(before)
    []

A leftover is reported and then cleaned up (processes killed, temp entries removed), so one
leaky test fails alone instead of poisoning every test after it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

TEMP_PREFIX = "srelab-"
GPU_TOLERANCE_BYTES = 64 * 2**20
SETTLE_S = 5.0


@dataclass
class Snapshot:
    started: float
    children: set
    ports: set
    temps: set
    gpu_bytes: int | None


_EXEMPT: set[int] = set()


def exempt(pid: int) -> None:
    """Do not count this process tree (one that lives for the whole session on purpose,
    like a grading run's submission process); it is cleaned up by its owner."""
    _EXEMPT.add(pid)


def unexempt(pid: int) -> None:
    _EXEMPT.discard(pid)


def _children() -> dict[int, psutil.Process]:
    out = {}
    skip: set[int] = set()
    for pid in list(_EXEMPT):
        try:
            root = psutil.Process(pid)
            skip |= {root.pid, *(c.pid for c in root.children(recursive=True))}
        except psutil.Error:
            _EXEMPT.discard(pid)
    for p in psutil.Process().children(recursive=True):
        try:
            if p.pid not in skip and p.status() != psutil.STATUS_ZOMBIE:
                out[p.pid] = p
        except psutil.NoSuchProcess:
            pass
    return out


def _listening(started: float | None = None) -> set[tuple[str, int, int]]:
    """(address, port, owner pid) of sockets listening, owned by this test's processes.

    A socket counts if this process or a descendant owns it, or an orphan (PPID 1) created
    after `started` does: a daemonised server is exactly the leak to catch, while servers of
    unrelated programs on the machine are not ours to judge.
    """
    mine = {os.getpid(), *(_children())}
    found = set()
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return found
    for c in conns:
        if c.status != psutil.CONN_LISTEN or c.pid is None:
            continue
        ours = c.pid in mine
        if not ours and started is not None:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                p = psutil.Process(c.pid)
                ours = p.ppid() == 1 and p.create_time() >= started - 0.5
        if ours:
            found.add((c.laddr.ip, c.laddr.port, c.pid))
    return found


def _temps(started: float | None = None, pids: set | None = None) -> set[str]:
    """`srelab-<pid>-*` temp entries made by this process tree (or by a process now dead).

    Entries of other, live programs on the machine are not ours to judge.
    """
    root = Path(tempfile.gettempdir())
    try:
        names = [n for n in os.listdir(root) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return set()
    if started is None:
        return set(names)
    mine = {os.getpid(), *(pids or ())}
    found = set()
    for name in names:
        owner = name[len(TEMP_PREFIX) :].split("-", 1)[0]
        pid = int(owner) if owner.isdigit() else None
        if pid in mine:
            found.add(name)
        elif pid is None or not psutil.pid_exists(pid):
            with contextlib.suppress(OSError):
                if (root / name).stat().st_mtime >= started - 0.5:
                    found.add(name)
    return found


def _gpu_bytes() -> int | None:
    """GPU memory held by other processes plus tensors alive in this one (None: no GPU)."""
    if "torch" not in sys.modules:
        from labsupport import device

        if not device.cuda_available():
            return None
    import torch

    if not torch.cuda.is_available():
        return None
    total = torch.cuda.memory_allocated() if torch.cuda.is_initialized() else 0
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid != os.getpid() and proc.usedGpuMemory:
                        total += int(proc.usedGpuMemory)
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        pass
    return total


def snapshot() -> Snapshot:
    started = time.time()
    return Snapshot(started, set(_children()), _listening(), _temps(), _gpu_bytes())


def leftovers(before: Snapshot, settle_s: float = SETTLE_S) -> list[str]:
    """Describe (and clean up) what appeared since `before`; [] when the test was clean."""
    deadline = time.monotonic() + settle_s
    while True:  # processes and sockets may need a moment to finish exiting
        procs = {pid: p for pid, p in _children().items() if pid not in before.children}
        ports = _listening(before.started) - before.ports
        if (not procs and not ports) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    problems = []
    for pid, p in procs.items():
        with contextlib.suppress(psutil.Error):
            problems.append(f"process {pid} ({' '.join(p.cmdline()[:4])[:80]})")
        with contextlib.suppress(psutil.Error, OSError):
            p.send_signal(signal.SIGKILL)
    for ip, port, pid in sorted(ports):
        problems.append(f"port {ip}:{port} listening (pid {pid})")
        with contextlib.suppress(psutil.Error, OSError):
            if pid != os.getpid():
                psutil.Process(pid).send_signal(signal.SIGKILL)
    seen = before.children | set(procs)
    for name in sorted(_temps(before.started, seen) - before.temps):
        problems.append(f"temp entry {Path(tempfile.gettempdir()) / name}")
        path = Path(tempfile.gettempdir()) / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    if before.gpu_bytes is not None:
        after = _gpu_bytes() or 0
        if after - before.gpu_bytes > GPU_TOLERANCE_BYTES:
            grown = (after - before.gpu_bytes) / 2**20
            problems.append(f"GPU memory {grown:.0f} MiB above the baseline")
    return problems
