"""A private mount namespace with a small tmpfs: a container's /dev/shm, for this process only.

    >>> from labsupport.linux import mounts
    >>> mounts.probe().mode in ("root", "user namespace", "none")
    True
    >>> u = mounts.usage("/tmp")
    >>> u.size_bytes > 0 and 0 <= u.used_bytes <= u.size_bytes
    True

`enter()` moves the calling process (call it first thing in a fresh process, before any
thread starts) into its own mount namespace: as root with `unshare(CLONE_NEWNS)`, elsewhere
inside a new user namespace where unprivileged ones are allowed. Then `mount_tmpfs("/dev/shm",
64 * 2**20)` gives it, and the processes it starts, a 64 MiB /dev/shm as Docker's default
`--shm-size` does, while the rest of the machine keeps its own. `usage` is what `df` reports
(statvfs), `listing` what `ls -l` shows, and `Sampler` records usage over time in a thread.
`probe()` says, once per process, whether this machine allows it (tried in a throwaway child).
"""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 16384, 1 << 18
MNT_DETACH = 2


class MountsUnavailable(OSError):
    """This process cannot have private mounts here (not root, no user namespaces)."""


@dataclass(frozen=True)
class Availability:
    mode: str  # "root" | "user namespace" | "none"
    reason: str = ""


@dataclass(frozen=True)
class Usage:
    size_bytes: int
    used_bytes: int

    @property
    def free_bytes(self) -> int:
        return self.size_bytes - self.used_bytes


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _fail(what: str) -> MountsUnavailable:
    err = ctypes.get_errno()
    return MountsUnavailable(err, f"{what}: {os.strerror(err)}")


def enter() -> str:
    """Give this process its own mount namespace; the mode it got ("root", "user namespace")."""
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    if uid == 0 and libc.unshare(CLONE_NEWNS) == 0:
        mode = "root"
    elif libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
        mode = "user namespace"
    else:
        raise _fail("unshare")
    # mounts made from here on stay in this namespace (systemd makes / shared)
    if libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None) != 0:
        raise _fail("mount --make-rprivate /")
    return mode


def mount_tmpfs(path: str, size_bytes: int) -> None:
    """A fresh, empty tmpfs of `size_bytes` on `path` (after `enter()`), like --shm-size."""
    data = f"size={int(size_bytes)},mode=1777".encode()
    flags = ctypes.c_ulong(MS_NOSUID | MS_NODEV)
    if _libc().mount(b"tmpfs", path.encode(), b"tmpfs", flags, data) != 0:
        raise _fail(f"mount tmpfs on {path}")


def unmount(path: str) -> None:
    """Detach the mount on `path` (its files are freed once nothing maps them)."""
    if _libc().umount2(path.encode(), MNT_DETACH) != 0:
        raise _fail(f"umount {path}")


def usage(path: str) -> Usage:
    """Size and used bytes of the file system holding `path`, as `df` reports them."""
    st = os.statvfs(path)
    return Usage(st.f_blocks * st.f_frsize, (st.f_blocks - st.f_bfree) * st.f_frsize)


def listing(path: str) -> list[tuple[str, int]]:
    """(name, bytes allocated) of the files in `path`, as `ls -s` sees them, largest first."""
    out = []
    with os.scandir(path) as entries:
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            out.append((e.name, st.st_blocks * 512))
    return sorted(out, key=lambda x: (-x[1], x[0]))


class Sampler:
    """Samples `usage(path).used_bytes` every `interval_s` in a thread: (t_s, used_bytes)."""

    def __init__(self, path: str, interval_s: float = 0.002):
        self.path, self.interval_s = path, interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self._t0, usage(self.path).used_bytes))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Sampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.samples.append((time.perf_counter() - self._t0, usage(self.path).used_bytes))

    @property
    def peak_bytes(self) -> int:
        return max((b for _, b in self.samples), default=0)


_PROBE = """
from labsupport.linux import mounts
mode = mounts.enter()
mounts.mount_tmpfs("/dev/shm", 1 << 20)
assert mounts.usage("/dev/shm").size_bytes == 1 << 20
print(mode)
"""


@functools.lru_cache(maxsize=1)
def probe() -> Availability:
    """Whether a process can have a private /dev/shm here (tried once, in a child)."""
    if not sys.platform.startswith("linux") or not os.path.isdir("/dev/shm"):
        return Availability("none", f"needs Linux with /dev/shm, this is {sys.platform}")
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    try:
        r = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Availability("none", f"the probe failed: {exc}")
    if r.returncode == 0:
        return Availability(r.stdout.strip())
    last = (r.stderr.strip().splitlines() or ["no reason given"])[-1]
    return Availability("none", last)
