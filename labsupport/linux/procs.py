"""The process table as /proc shows it: state, parent, group, namespaced PID, what a process maps.

    >>> import os
    >>> from labsupport.linux import procs
    >>> me = procs.read(os.getpid())
    >>> me.state in ("R", "S"), me.ppid == os.getppid(), me.pgid == os.getpgid(0)
    (True, True, True)
    >>> procs.read(2**22 + 7) is None  # no such process
    True

What `ps -o pid,ppid,pgid,stat,comm,args` prints, read straight from /proc: a zombie has state
"Z" and no memory of its own any more; an orphan is alive and its parent is whoever adopted it
(PID 1 of its namespace, or the nearest subreaper). `members(init_pid)` lists the processes of
a PID namespace from the outside (host PIDs; `ns_pid` gives the PID they see inside), and
`mapped_bytes(pid, st_dev)` sums the shared file mappings a process holds on one file system,
which is how the labs account memory that a tmpfs stands in for. `listening(pid)` gives the TCP
ports a process listens on, in its own network namespace.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str  # R running, S sleeping, D disk wait, Z zombie, T stopped ...
    name: str  # comm: the first 15 bytes of the program name (prctl PR_SET_NAME sets it)
    cmdline: str  # "" for a zombie: it has no memory left to read its arguments from
    rss_bytes: int
    nspid: tuple  # its PID in each nested PID namespace, outermost first

    @property
    def zombie(self) -> bool:
        return self.state == "Z"


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def read(pid: int) -> Proc | None:
    """The process `pid` (host PID as this process sees it), or None if it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    state, ppid, pgid, sid = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    rss_pages = int(fields[21])
    status = _read(f"/proc/{pid}/status") or ""
    nspid = next(
        (
            tuple(int(x) for x in ln.split()[1:])
            for ln in status.splitlines()
            if ln.startswith("NSpid:")
        ),
        (pid,),
    )
    raw = _read(f"/proc/{pid}/cmdline") or ""
    return Proc(pid, ppid, pgid, sid, state, name, raw.replace("\0", " ").strip(),
                rss_pages * os.sysconf("SC_PAGE_SIZE"), nspid)  # fmt: skip


def pids() -> list[int]:
    return sorted(int(e) for e in os.listdir("/proc") if e.isdigit())


def namespace(pid: int, kind: str = "pid") -> int | None:
    """The inode of `pid`'s namespace of `kind` (pid, mnt, net ...), None if it is gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def members(init_pid: int) -> list[Proc]:
    """Every process in the PID namespace whose PID 1 is `init_pid` (host view), init first."""
    ns = namespace(init_pid)
    if ns is None:
        return []
    found = []
    for pid in pids():
        if namespace(pid) == ns:
            p = read(pid)
            if p is not None:
                found.append(p)
    return sorted(found, key=lambda p: (p.pid != init_pid, p.pid))


def ns_pid(p: Proc) -> int:
    """The PID `p` has in its own (innermost) namespace."""
    return p.nspid[-1]


def mapped_bytes(pid: int, st_dev: int) -> int:
    """Bytes of shared file mappings `pid` holds on the file system with device `st_dev`."""
    text = _read(f"/proc/{pid}/maps")
    if not text:
        return 0
    want = f"{os.major(st_dev):02x}:{os.minor(st_dev):02x}"
    total = 0
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) >= 5 and parts[3] == want and parts[1].endswith("s"):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            total += end - start
    return total


def _socket_inodes(pid: int) -> set[int]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    found.add(int(link[8:-1]))
    return found


def listening(pid: int) -> list[int]:
    """TCP ports `pid` listens on (IPv4 and IPv6), read in its own network namespace."""
    mine = _socket_inodes(pid)
    ports = set()
    for table in ("tcp", "tcp6"):
        text = _read(f"/proc/{pid}/net/{table}") or ""
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[9]) in mine:  # 0A: LISTEN
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def set_name(name: str) -> None:
    """Set this process's name as ps and top show it (comm, 15 bytes: prctl PR_SET_NAME)."""
    import ctypes

    ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)


def wait_gone(pids_: list[int], timeout_s: float, poll_s: float = 0.01) -> dict[int, float | None]:
    """Seconds until each process was gone (exited and reaped, or a zombie), None if not."""
    start = time.monotonic()
    left = set(pids_)
    when: dict[int, float | None] = {p: None for p in pids_}
    while left and time.monotonic() - start <= timeout_s:
        for pid in list(left):
            p = read(pid)
            if p is None or p.zombie:
                when[pid] = time.monotonic() - start
                left.discard(pid)
        if left:
            time.sleep(poll_s)
    return when
