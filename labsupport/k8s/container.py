"""One run of a container: a real process in its own session, its output, its signals.

    >>> import sys
    >>> from labsupport.k8s.container import Container
    >>> c = Container([sys.executable, "-c", "print('hi'); import sys; sys.exit(3)"], env=None)
    >>> c.wait(10), c.exit_code, c.logs()
    (True, 3, ['hi'])

Like a container runtime: SIGTERM goes to the main process only (PID 1 of the container), so a
shell wrapper that does not `exec` its server never passes it on; `kill()` SIGKILLs the whole
process group (the runtime tears the container down, whatever it spawned). A process killed by
signal N reports exit code 128 + N (137 for SIGKILL, 143 for SIGTERM).
"""

from __future__ import annotations

import atexit
import collections
import os
import signal
import subprocess
import threading
import time
import weakref

LOG_LINES = 2000
_LIVE: weakref.WeakSet = weakref.WeakSet()  # containers not yet reaped


def _kill_all() -> None:
    """An interpreter (a notebook kernel) that exits takes its containers with it."""
    for container in list(_LIVE):
        container.kill()


class Container:
    def __init__(self, argv: list[str], env: dict | None, cwd: str | None = None):
        """Start it now; OSError (e.g. FileNotFoundError) when the executable cannot run."""
        self.argv = list(argv)
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        self.finished_at: float | None = None
        self.finished_mono: float | None = None  # time.monotonic() when it was seen exited
        self._logs: collections.deque = collections.deque(maxlen=LOG_LINES)
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        if not _LIVE:  # registered on first use, so that importing changes nothing
            atexit.unregister(_kill_all)
            atexit.register(_kill_all)
        _LIVE.add(self)
        self._reader = threading.Thread(target=self._read, name=f"logs-{self.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            self._logs.append(raw.decode(errors="replace").rstrip("\n"))
        self.proc.stdout.close()

    def logs(self) -> list[str]:
        return list(self._logs)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def sigterm(self) -> None:
        try:
            self.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the process group and reap the main process."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.wait(10)

    def wait(self, timeout_s: float) -> bool:
        """True when the main process has exited (reaped) within timeout_s."""
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        self._mark_finished()
        _LIVE.discard(self)
        self._reader.join(0.2)  # its last lines (a grandchild may keep the pipe open longer)
        return True

    @property
    def exit_code(self) -> int | None:
        code = self.proc.poll()
        if code is None:
            return None
        self._mark_finished()
        return 128 - code if code < 0 else code

    def _mark_finished(self) -> None:
        if self.finished_at is None:
            self.finished_at, self.finished_mono = time.time(), time.monotonic()
