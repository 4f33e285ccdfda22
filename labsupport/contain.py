"""Run a command contained: its own namespaces, a memory limit, and nothing left behind.

    >>> import subprocess, sys
    >>> from labsupport import contain
    >>> argv = contain.wrap([sys.executable, "-c", "print('hello')"], contain.Limits())
    >>> subprocess.run(argv, capture_output=True, text=True).stdout
    'hello\\n'
    >>> contain.sandbox().mode in ("namespaces", "none")
    True

Learner code (a submission's exercise cells, a hook inside a workload, a handler inside a
server) runs through this warden. Where the OS allows it ("namespaces" mode) the command gets:
- a user namespace in which it has no capabilities, so it cannot undo the rest;
- a mount namespace: the whole file system read-only, a private `/tmp` and `/dev/shm`, and the
  repository's `tests/`, `solutions/` and `.git` hidden;
- a PID namespace whose init (this warden) forwards signals, reaps orphans and, when the
  command ends or the warden is killed, kills every process left in it, however detached;
- with `network=False`, a network namespace with no interfaces up.
Elsewhere ("none" mode, with the reason) the warden is a child subreaper that kills what the
command leaves behind. Either way the command's data segment is capped (`RLIMIT_DATA`, CPU
only: CUDA maps device memory into the address space), and the caller can watch resident
memory from outside (`tree_rss_bytes`). `python -m labsupport.contain --probe` says which mode.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_MEMORY_BYTES = 4 * 2**30
INSIDE_ID = 1000  # the command's uid/gid inside its user namespace: never 0, so no capabilities
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGQUIT)  # fmt: skip
REPO_ROOT = Path(__file__).resolve().parent.parent
HIDDEN = ("tests", "solutions", ".git")

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
CLONE_NEWNET, CLONE_NEWIPC = 0x40000000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REC, MS_PRIVATE = 16384, 1 << 18
MOUNT_ATTR_RDONLY, AT_RECURSIVE, AT_FDCWD, SYS_MOUNT_SETATTR = 0x1, 0x8000, -100, 442
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38


@dataclass(frozen=True)
class Limits:
    """What a contained command may use. memory_bytes None: no data-segment cap."""

    memory_bytes: int | None = DEFAULT_MEMORY_BYTES
    network: bool = True  # False: an empty network namespace (pure functions need none)
    hide: tuple[str, ...] = field(default_factory=lambda: tuple(str(REPO_ROOT / h) for h in HIDDEN))
    tmp_bytes: int = 512 * 2**20


@dataclass(frozen=True)
class Sandbox:
    mode: str  # "namespaces" | "none"
    reason: str = ""

    def describe(self) -> str:
        if self.mode == "namespaces":
            return "sandboxed: user, mount, PID namespaces (read-only files, private /tmp)"
        return f"not sandboxed ({self.reason}): a submission could write to your files"


def wrap(argv: list[str], limits: Limits | None = None, report: str | None = None) -> list[str]:
    """The argv that runs `argv` under the warden (mode chosen once per process)."""
    spec = asdict(limits or Limits())
    spec["mode"] = sandbox().mode
    spec["report"] = report
    return [sys.executable, "-m", "labsupport.contain", json.dumps(spec), "--", *argv]


@functools.lru_cache(maxsize=1)
def sandbox() -> Sandbox:
    """Whether namespaces work here (tried once, in a throwaway warden)."""
    if os.environ.get("SRELAB_SANDBOX", "").lower() in ("0", "off", "none"):
        return Sandbox("none", "switched off by SRELAB_SANDBOX")
    if not sys.platform.startswith("linux"):
        return Sandbox("none", f"namespaces need Linux, this is {sys.platform}")
    spec = asdict(Limits(memory_bytes=None, network=False))
    spec.update(mode="namespaces", report=None)
    argv = [sys.executable, "-m", "labsupport.contain", json.dumps(spec), "--", "/bin/true"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Sandbox("none", f"the probe failed: {exc}")
    if r.returncode == 0:
        return Sandbox("namespaces")
    last = (r.stderr.strip().splitlines() or ["no reason given"])[-1]
    return Sandbox("none", last.removeprefix("contain: "))


def _env() -> dict:
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO_ROOT) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])
    return env


def tree(pid: int) -> list:
    """psutil processes: `pid` and all its descendants (empty if it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its descendants."""
    import psutil

    total = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def strays(warden_pid: int) -> list:
    """Processes under a warden other than the warden, its namespace init and its command.

    The command is the warden's oldest child (its namespace init's oldest child): orphans
    are adopted later, so anything else is something the command started and left.
    """
    import psutil

    try:
        warden = psutil.Process(warden_pid)
        keep = {warden_pid}
        kids = sorted(warden.children(), key=lambda p: p.create_time())
        if kids and sandbox().mode == "namespaces":
            keep.add(kids[0].pid)
            kids = sorted(kids[0].children(), key=lambda p: p.create_time())
        if not kids:
            return []
        keep.add(kids[0].pid)
        found = [p for p in warden.children(recursive=True) if p.pid not in keep]
        return [p for p in found if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


def describe_process(p) -> str:
    """'1234 sleep 600' for a report."""
    import psutil

    try:
        return f"{p.pid} {' '.join(p.cmdline())[:60] or p.name()}"
    except psutil.Error:
        return str(getattr(p, "pid", p))


def kill_tree(pid: int) -> list[str]:
    """SIGKILL `pid`, its process group and every descendant; their names (for reports)."""
    import psutil

    procs = tree(pid)
    names = [describe_process(p) for p in procs]
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    for p in procs:
        with contextlib.suppress(psutil.Error, OSError):
            p.send_signal(signal.SIGKILL)
    return names


# ---- the warden itself (runs as `python -m labsupport.contain SPEC -- ARGV`) ----------------

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    def enc(s):
        return s.encode() if s is not None else None

    _check(
        _c().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {target}",
    )


def _setattr(path: str, set_flags: int = 0, clear_flags: int = 0) -> None:
    attr = (ctypes.c_uint64 * 4)(set_flags, clear_flags, 0, 0)
    libc = _c()
    libc.syscall.restype = ctypes.c_long
    r = libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), path.encode(),
        ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(32),
    )  # fmt: skip
    _check(int(r), f"mount_setattr {path}")


def _prctl(option: int, value: int) -> None:
    _c().prctl(option, ctypes.c_ulong(value), 0, 0, 0)


def _enter_namespaces(spec: dict) -> None:
    """Runs in the warden: new user/mount/PID(/net) namespaces, read-only files."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC
    if not spec["network"]:
        flags |= CLONE_NEWNET
    _check(_c().unshare(flags), "unshare")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{INSIDE_ID} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{INSIDE_ID} {gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    for path in spec["hide"]:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
    writable = ["/tmp"] + (["/dev/shm"] if os.path.isdir("/dev/shm") else [])
    for path in writable:
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={spec['tmp_bytes']},mode=1777")
    _setattr("/", set_flags=MOUNT_ATTR_RDONLY)
    for path in writable:
        _setattr(path, clear_flags=MOUNT_ATTR_RDONLY)


def _exec_command(argv: list[str], spec: dict) -> None:
    """In the forked child: own process group, limits, then exec (never returns)."""
    try:
        os.setpgid(0, 0)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if spec["memory_bytes"] and not _nvidia_driver():
            cap = int(spec["memory_bytes"])  # with CUDA, only the caller's RSS watch applies:
            resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))  # CUDA maps huge ranges
        for s in FORWARDED:
            signal.signal(s, signal.SIG_DFL)
        if spec["mode"] == "namespaces":
            os.chdir("/tmp")
            os.environ["TMPDIR"] = "/tmp"  # the caller's TMPDIR is not visible in here
        os.execvp(argv[0], argv)
    except BaseException as exc:  # noqa: BLE001 - report and leave, never run the warden's code
        os.write(2, f"contain: cannot start {argv[0]}: {exc}\n".encode())
        os._exit(127)


def _nvidia_driver() -> bool:
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia/version"))


def _alive_except(pids: set[int]) -> list[tuple[int, str]]:
    """(pid, command) of processes visible in /proc, except `pids` and this one."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in pids or int(entry) == me:
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            continue
        found.append((int(entry), raw.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


def _descendants_of(root: int) -> list[tuple[int, str]]:
    """Descendants of `root` from /proc (for the mode without a PID namespace)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier and p not in out}
        out |= frontier
    return [(p, c) for p, c in _alive_except(set()) if p in out]


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _wait_for(child: int, parent: int | None, on_orphan=None) -> int:
    """Wait for `child`, reaping any other child meanwhile; if `parent` (who started the
    warden) dies, even by SIGKILL, kill the child and leave. Polled: a process that unshared
    a PID namespace cannot start threads, and PR_SET_PDEATHSIG follows the parent *thread*."""
    import time

    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 0
        if pid == child:
            return status
        if pid:
            if on_orphan is not None:
                on_orphan()
            continue
        if parent is not None and os.getppid() != parent:
            with contextlib.suppress(OSError):
                os.killpg(child, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
            for pid, _ in _descendants_of(os.getpid()):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            os._exit(137)
        time.sleep(0.05)


def _supervise(child: int, spec: dict, in_namespace: bool, parent: int | None = None) -> int:
    """Forward signals to `child`'s group, reap orphans, clean up; return its wait status."""

    def forward(signum, _frame):
        with contextlib.suppress(OSError):
            os.killpg(child, signum)

    for s in FORWARDED:
        signal.signal(s, forward)
    counted = {"orphans": 0}

    def orphan() -> None:
        counted["orphans"] += 1

    status = _wait_for(child, parent, orphan)
    orphans = counted["orphans"]
    left = _alive_except({1}) if in_namespace else _descendants_of(os.getpid())
    if in_namespace:
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)  # from a PID namespace's init: everything inside it
    else:
        for pid, _ in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        _reap_all()
        if not (_alive_except({1}) if in_namespace else _descendants_of(os.getpid())):
            break
        time.sleep(0.02)
    if spec.get("report_fd") is not None:
        report = {"mode": spec["mode"], "left_running": [c for _, c in left], "orphans": orphans}
        with contextlib.suppress(OSError):
            os.write(spec["report_fd"], json.dumps(report).encode())
    return status


def reexec_contained(argv: list[str], limits: Limits | None = None) -> None:
    """Replace this process by itself under the warden (same pid), unless already contained.

    For a process that is about to load learner code it was handed (`srelab serve` with a
    learner's handler): whoever started it keeps its pid and signals, now through the warden.
    """
    if os.environ.get("SRELAB_CONTAINED") == "1":
        return
    wrapped = wrap(argv, limits)
    os.execv(wrapped[0], wrapped)


def _exit_like(status: int) -> None:
    """Leave with the child's exit code, or die of the signal that killed it."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
    if code > 128 and code - 128 < signal.NSIG:  # a PID-namespace init reports a signal so
        sig = code - 128
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, signal.SIG_DFL)
        with contextlib.suppress(OSError):
            os.kill(os.getpid(), sig)
    os._exit(code)


def _init_main(argv: list[str], spec: dict) -> None:
    """PID 1 of the new namespace: mount its /proc, run the command, clean up, exit like it."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the warden dies (SIGKILL): so does everything
    with contextlib.suppress(OSError):  # its own group: a signal sent to the warden's group
        os.setpgid(0, 0)  # reaches the command once (through the warden), not twice
    with contextlib.suppress(OSError):
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    child = os.fork()
    if child == 0:
        _exec_command(argv, spec)
    status = _supervise(child, spec, in_namespace=True)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))  # init cannot kill itself with a signal
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main(args: list[str]) -> None:
    if "--" not in args:
        sys.exit("usage: python -m labsupport.contain SPEC_JSON -- COMMAND [ARGS...]")
    split = args.index("--")
    spec, argv = json.loads(args[0]), args[split + 1 :]
    if not argv:
        sys.exit("contain: no command")
    spec["report_fd"] = None
    if spec.get("report"):
        spec["report_fd"] = os.open(spec["report"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.environ["SRELAB_CONTAINED"] = "1"  # the command knows; a re-exec does not nest
    parent = os.getppid()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if spec["mode"] == "namespaces":
        try:
            _enter_namespaces(spec)
        except OSError as exc:
            sys.exit(f"contain: namespaces unavailable: {exc}")
        child = os.fork()
        if child == 0:
            _init_main(argv, spec)

        def forward(signum, _frame):
            with contextlib.suppress(OSError):
                os.kill(child, signum)

        for s in FORWARDED:
            signal.signal(s, forward)
        _exit_like(_wait_for(child, parent))  # the init killed: everything inside dies
    child = os.fork()
    if child == 0:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _exec_command(argv, spec)
    _exit_like(_supervise(child, spec, in_namespace=False, parent=parent))


if __name__ == "__main__":
    main(sys.argv[1:])
