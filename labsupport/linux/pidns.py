"""A command run as PID 1 of its own PID namespace, like a container's entrypoint.

    >>> from labsupport.linux import pidns
    >>> with pidns.Container(["sleep", "30"]) as c:
    ...     [p.nspid[-1] for p in c.members()]
    [1]
    >>> c.exit_status is not None  # leaving the block took everything in it down
    True

`Container(argv)` starts `argv` as PID 1 of a new PID namespace, with its own mount namespace
(a fresh /proc, so `ps` inside sees only the container; a private tmpfs on /run and, if asked,
tmpfs mounts of given sizes under it) and, unless `network=True`, its own network namespace
with loopback up. As in a container, PID 1 gets no default action for signals it does not
handle (SIGTERM does nothing to a PID 1 that installed no handler), orphans of the namespace
are re-parented to it, and when PID 1 exits the kernel kills every process left inside. From
outside, `init_pid` is PID 1's host PID, `members()` lists the processes inside (host view,
`procs.Proc`), `root(path)` is a path inside the container's mounts, `signal()` signals PID 1
and `kill()` ends everything. As root the namespaces are created directly; elsewhere inside a
new user namespace where the machine allows it (`available()` says).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

from labsupport.linux import procs

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUSER = 0x20000, 0x20000000, 0x40000000, 0x10000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


class ContainerError(RuntimeError):
    """The container could not start (no namespaces here, a command that cannot run ...)."""


def _pdeathsig() -> None:  # in a child, before exec: die with the process that started it
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Container:
    """`argv` as PID 1 of its own PID, mount (and network) namespaces; see the module doc."""

    def __init__(self, argv: list[str], *, tmpfs: dict | None = None, network: bool = False,
                 env: dict | None = None, log_path: str | None = None):  # fmt: skip
        self.argv = list(argv)
        self.tmpfs = dict(tmpfs or {})  # {"/run/card": size_bytes}: mounted under /run
        self.network, self.env, self.log_path = network, env, log_path
        self.init_pid: int | None = None
        self.exit_status: int | None = None
        self._launcher: subprocess.Popen | None = None

    def start(self) -> Container:
        spec = {"tmpfs": self.tmpfs, "network": self.network, "log": self.log_path}
        env = dict(os.environ if self.env is None else self.env)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self._launcher = subprocess.Popen(
            [sys.executable, "-m", "labsupport.linux.pidns", json.dumps(spec), "--", *self.argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=_pdeathsig,
        )
        line = self._launcher.stdout.readline().strip()
        if not line.startswith("init "):
            err = self._launcher.stderr.read().strip().splitlines()
            self._launcher.wait()
            raise ContainerError(err[-1] if err else f"the container did not start: {line!r}")
        self.init_pid = int(line.split()[1])
        return self

    def members(self) -> list[procs.Proc]:
        return procs.members(self.init_pid) if self.init_pid else []

    def root(self, path: str) -> str:
        """`path` as the container sees it, reachable from outside."""
        return f"/proc/{self.init_pid}/root{path}"

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.init_pid, sig)

    def wait(self, timeout_s: float) -> int | None:
        """PID 1's wait status once it has exited (None if still running after timeout_s)."""
        if self.exit_status is not None:
            return self.exit_status
        try:
            self._launcher.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        out = self._launcher.stdout.read().strip().splitlines()
        status = next((ln.split()[1] for ln in out if ln.startswith("exit ")), None)
        self.exit_status = int(status) if status is not None else -1
        return self.exit_status

    def kill(self) -> None:
        """SIGKILL PID 1: the kernel kills every process in the namespace."""
        if self._launcher is None:
            return
        self.signal(signal.SIGKILL)
        if self.wait(10.0) is None:
            self._launcher.kill()
            self._launcher.wait()
        deadline = time.monotonic() + 5
        while self.init_pid and procs.read(self.init_pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def __enter__(self) -> Container:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
        for stream in (self._launcher.stdout, self._launcher.stderr):
            with contextlib.suppress(Exception):
                stream.close()


def available() -> tuple[bool, str]:
    """Whether containers can be made here (tried once, in a throwaway child)."""
    try:
        with Container(["true"]) as c:
            c.wait(10)
        return True, ""
    except (ContainerError, OSError) as exc:
        return False, str(exc)


# ---- the launcher (`python -m labsupport.linux.pidns SPEC -- ARGV`) -------------------------
def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enc(s):
    return s.encode() if s is not None else None


def _mount(libc, source, target, fstype, flags, data=None) -> None:
    result = libc.mount(_enc(source), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data))
    _check(result, f"mount {target}")


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def _unshare(libc, flags: int) -> None:
    uid, gid = os.getuid(), os.getgid()
    if uid == 0 and libc.unshare(flags) == 0:
        return
    _check(libc.unshare(flags | CLONE_NEWUSER), "unshare")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _init(argv: list[str], spec: dict, libc) -> None:
    """PID 1 of the new namespace: its mounts, then exec the command (never returns)."""
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the launcher dies: so do we
        _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
        _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _mount(libc, "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
        for path, size in spec["tmpfs"].items():
            os.makedirs(path, exist_ok=True)
            _mount(
                libc, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(size)},mode=1777"
            )
        if not spec["network"]:
            _loopback_up()
        if spec.get("log"):
            fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        os.execvp(argv[0], argv)
    except BaseException as exc:  # noqa: BLE001 - say why, never run the launcher's code
        os.write(2, f"container: cannot start {argv[0]}: {exc}\n".encode())
        os._exit(127)


def main(args: list[str]) -> None:
    split = args.index("--")
    spec, argv = json.loads(args[0]), args[split + 1 :]
    libc = ctypes.CDLL(None, use_errno=True)
    flags = CLONE_NEWPID | CLONE_NEWNS | (0 if spec["network"] else CLONE_NEWNET)
    try:
        _unshare(libc, flags)
    except OSError as exc:
        sys.exit(f"container: namespaces unavailable here: {exc}")
    child = os.fork()
    if child == 0:
        _init(argv, spec, libc)
    print(f"init {child}", flush=True)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # the launcher is not the init:
        signal.signal(s, lambda signum, _f: os.kill(child, signum))  # pass signals on
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    print(f"exit {status}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
