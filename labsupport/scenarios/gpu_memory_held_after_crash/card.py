"""The accelerator's memory: the real GPU when there is one, a stand-in tmpfs when not.

    >>> from labsupport.scenarios.gpu_memory_held_after_crash import card
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
    ...     c = card.Card(d)
    ...     before = c.free_bytes()
    ...     held = c.allocate(4 * 2**20)
    ...     before - c.free_bytes() >= 4 * 2**20
    True

In a process, `Card("cuda")` allocates with torch on GPU 0 (the process gets a CUDA context,
and keeps the memory until it exits); `Card(directory)` is the stand-in: memory on a tmpfs
(the lab mounts one of a card's size at `STAND_IN_DIR`), reserved with posix_fallocate,
mapped shared and unlinked, so that, like device memory, it is held by the process that
mapped it and released by the kernel when that process exits (not when its parent reaps it: a
zombie holds none). From outside, `usage_by_pid` is the per-process list `nvidia-smi
--query-compute-apps=pid,used_memory` gives (NVML), or the stand-in's, read from each process's
shared mappings on the card's tmpfs; `totals` is the card's used and total memory.
"""

from __future__ import annotations

import mmap
import os

STAND_IN_DIR = "/run/card"
MiB = 2**20


class Card:
    """Device memory for this process: "cuda", or a stand-in directory on a tmpfs."""

    def __init__(self, where: str):
        self.where = where
        self._held: list = []

    @property
    def real(self) -> bool:
        return self.where == "cuda"

    def allocate(self, nbytes: int):
        """Hold `nbytes` of device memory until this process exits (OSError/OOM if no room)."""
        if self.real:
            import torch

            t = torch.empty(int(nbytes), dtype=torch.uint8, device="cuda")
            t.fill_(1)
            torch.cuda.synchronize()
            self._held.append(t)
            return t
        path = os.path.join(self.where, f"alloc-{os.getpid()}-{len(self._held)}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, int(nbytes))  # ENOSPC here, like a CUDA OOM
            mm = mmap.mmap(fd, int(nbytes), flags=mmap.MAP_SHARED)
        finally:
            os.unlink(path)  # nothing but this process's mapping keeps it now
            os.close(fd)
        self._held.append(mm)
        return mm

    def free_bytes(self) -> int:
        if self.real:
            import torch

            return int(torch.cuda.mem_get_info()[0])
        st = os.statvfs(self.where)
        return st.f_bavail * st.f_frsize

    def total_bytes(self) -> int:
        if self.real:
            import torch

            return int(torch.cuda.mem_get_info()[1])
        st = os.statvfs(self.where)
        return st.f_blocks * st.f_frsize


# ---- from outside ------------------------------------------------------------------------
def usage_by_pid(pids: list[int], stand_in_dir: str | None) -> dict[int, int]:
    """{pid: device bytes} for those of `pids` that hold device memory (host PIDs).

    stand_in_dir None: NVML's compute processes of GPU 0; else the stand-in's mappings on the
    tmpfs at that path (as this process sees it).
    """
    if stand_in_dir is None:
        return {p: b for p, b in nvml_processes().items() if p in set(pids)}
    from labsupport.linux import procs

    dev = os.stat(stand_in_dir).st_dev
    out = {}
    for pid in pids:
        held = procs.mapped_bytes(pid, dev)
        if held:
            out[pid] = held
    return out


def totals(stand_in_dir: str | None) -> tuple[int, int]:
    """(used, total) bytes of the card: NVML's, or the stand-in tmpfs's."""
    if stand_in_dir is None:
        import pynvml

        pynvml.nvmlInit()
        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0))
            return int(info.used), int(info.total)
        finally:
            pynvml.nvmlShutdown()
    st = os.statvfs(stand_in_dir)
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize


def nvml_processes() -> dict[int, int]:
    """{host pid: used bytes} of GPU 0's compute processes, as nvidia-smi lists them."""
    import pynvml

    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return {
            int(p.pid): int(p.usedGpuMemory or 0)
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        }
    finally:
        pynvml.nvmlShutdown()
