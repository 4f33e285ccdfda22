"""The group process of a job, as the launcher sees it: each rank's output and exit, the kill.

    >>> from labsupport.distributed import group
    >>> group.Group.__name__
    'Group'

`labsupport.distributed.rank`'s main process forks one process per rank and writes one line per
rank that exits ("RANK CODE") to a status pipe; each rank writes its progress lines and errors
to pipes of its own. `Group` starts that process, pumps the pipes on threads (stamping progress
lines on arrival), tells which ranks still run, and kills the whole group - its process group,
or its sandbox when contained - in one go.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time

from labsupport.distributed.rank import PROGRESS


class Group:
    """The group process and, per rank, its output pumps and when it exited."""

    def __init__(self, argv: list[str], env: dict, fds: tuple, pipes: dict, status: int,
                 started: float):  # fmt: skip
        self.started = started
        self.out: dict[int, list] = {r: [] for r in pipes}
        self.err: dict[int, list[str]] = {r: [] for r in pipes}
        self.codes: dict[int, int] = {}
        self.ended: dict[int, float] = {}
        self.killed: set[int] = set()
        self.own_err: list[str] = []
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=fds,
            start_new_session=True,  # its own group: one killpg takes every rank
        )
        self.pumps = [
            threading.Thread(target=self._pump_own, daemon=True),
            threading.Thread(target=self._pump_status, args=(status,), daemon=True),
        ]
        for rank, (out, err) in pipes.items():
            self.pumps.append(threading.Thread(target=self._pump, args=(rank, out, True)))
            self.pumps.append(threading.Thread(target=self._pump, args=(rank, err, False)))
        for t in self.pumps:
            t.daemon = True
            t.start()

    def _now(self) -> float:
        return round(time.monotonic() - self.started, 4)

    def _pump(self, rank: int, fd: int, is_stdout: bool) -> None:
        with open(fd, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if is_stdout and line.startswith(PROGRESS):
                    with contextlib.suppress(ValueError):
                        data = json.loads(line[len(PROGRESS) :])
                        if isinstance(data, dict):
                            self.out[rank].append((self._now(), data))
                elif not is_stdout:
                    self.err[rank].append(line.rstrip("\n"))
                    del self.err[rank][:-40]

    def _pump_own(self) -> None:
        for line in self.proc.stderr:
            self.own_err.append(line.decode(errors="replace").rstrip("\n"))
            del self.own_err[:-20]

    def _pump_status(self, fd: int) -> None:
        with open(fd, encoding="utf-8") as stream:
            for line in stream:
                rank, _, code = line.strip().partition(" ")
                with contextlib.suppress(ValueError):
                    self.codes[int(rank)] = int(code)
                    self.ended[int(rank)] = self._now()

    def running(self) -> list[int]:
        if self.proc.poll() is not None:  # the group is gone: so is every rank
            for r in self.out:
                self.ended.setdefault(r, self._now())
        return [r for r in self.out if r not in self.ended]

    def kill(self, contained: bool) -> None:
        alive = self.running()
        if not alive and self.proc.poll() is not None:
            return
        if contained:
            from labsupport import contain

            contain.kill_tree(self.proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        now = self._now()
        for r in alive:
            self.killed.add(r)
            self.ended.setdefault(r, now)

    def close(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for t in self.pumps:
            t.join(timeout=5)
        self.running()
