"""The submission side of a grading run: learner code in its own contained process.

    >>> from labsupport.grading.submission import Submission
    >>> with Submission("def double(x):\\n    return 2 * x\\n", "<demo>") as sub:
    ...     sub.call("double", (21,), {})
    42

The trusted side (the pytest process that decides verdicts) never runs learner code. It
starts this process (`python -m labsupport.grading.submission FD`, contained: sandboxed where
the OS allows, no network, a memory cap), sends it the exercise cells once, then asks for
calls. Arguments and results cross a socket as data (`labsupport.wire`); exceptions come back
as (type, message, cell and line). A call that runs past its limit or its memory is stopped
from outside, whatever it is doing (a loop in C included), and the next call gets a fresh
process. Processes a call leaves behind are killed and named. Flags raised by the learner's
code come back with every answer (`labsupport.grading.flags`).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types

from labsupport import contain, wire

LOAD_TIMEOUT_S = 30.0
DEFAULT_CALL_TIMEOUT_S = 120.0
_HEADER = struct.Struct(">I")


class SubmissionError(Exception):
    """The learner's code could not answer; the message is a hint, never a traceback."""


class CallTimeout(SubmissionError):
    pass


class MissingName(LookupError):
    """The learner's cells do not define the name a check calls."""


class LearnerException(RuntimeError):
    """An exception of a type the grader does not know, raised by the learner's code."""


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int, deadline: float | None, watch=None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CallTimeout("timed out")
            ready, _, _ = select.select([sock], [], [], min(left, 0.25))
            if not ready:
                if watch is not None:
                    watch()
                continue
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket, deadline: float | None = None, watch=None) -> bytes:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, deadline, watch))
    if size > wire.MAX_BYTES:
        raise wire.WireError(f"an answer of {size} bytes")
    return _recv_exact(sock, size, deadline, watch)


def _rebuild_exception(error: dict) -> BaseException:
    name, message = str(error.get("type", "Exception")), str(error.get("message", ""))
    where = error.get("where")
    cls = getattr(builtins, name, None)
    ok = isinstance(cls, type) and issubclass(cls, Exception) and cls is not StopIteration
    if name == "NotImplementedError":
        return NotImplementedError(message)
    text = f"{message} (raised at {where})" if where else message
    if ok:
        try:
            return cls(text)
        except Exception:
            pass
    return LearnerException(f"{name}: {text}")


class Submission:
    """One contained process holding the learner's exercise cells, answering calls."""

    def __init__(
        self,
        source: str,
        label: str,
        *,
        limits: contain.Limits | None = None,
        load_timeout_s: float = LOAD_TIMEOUT_S,
    ):
        self.source, self.label = source, label
        self.load_timeout_s = load_timeout_s
        self.limits = limits or contain.Limits(network=False)
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.names: list[str] = []
        self.seq = 0
        self._log = None
        self.killed: list[str] = []
        self._lock = threading.Lock()  # one call at a time (probes call from their threads)
        self.on_start = None  # called with the new process's pid (the grader's hygiene)
        self.on_stop = None

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> list[str]:
        """Start the process and load the cells; the names they define. SubmissionError if not."""
        parent, child = socket.socketpair()
        self._log = tempfile.TemporaryFile()
        argv = contain.wrap(
            [sys.executable, "-m", "labsupport.grading.submission", str(child.fileno())],
            self.limits,
        )
        env = dict(os.environ)
        env.pop("SRELAB_REPORT_KEY", None)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(contain.REPO_ROOT), env.get("PYTHONPATH", "")] if p
        )
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            pass_fds=(child.fileno(),),
            start_new_session=True,
            env=env,
        )
        child.close()
        self.sock = parent
        if self.on_start is not None:
            self.on_start(self.proc.pid)
        try:
            reply = self._ask({"op": "load", "source": self.source, "label": self.label},
                              self.load_timeout_s, "loading your exercise cells")  # fmt: skip
        except CallTimeout:
            raise SubmissionError(
                f"loading your exercise cells did not finish within {self.load_timeout_s:g} s: "
                "exercise cells must only define functions and constants (is there a loop or "
                "a long computation at the top level of an exercise cell?)"
            ) from None
        if "error" in reply:
            err = reply["error"]
            where = f" (at {err['where']})" if err.get("where") else ""
            raise SubmissionError(
                f"your exercise cells fail when loaded: {err.get('type')}: "
                f"{err.get('message')}{where}"
            )
        self._check_strays("loading your exercise cells")
        self.names = list(reply.get("names", []))
        return self.names

    def close(self) -> None:
        if self.proc is not None and self.on_stop is not None:
            self.on_stop(self.proc.pid)
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(OSError):
                    self.proc.terminate()
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    contain.kill_tree(self.proc.pid)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(timeout=5)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # ---- calls ---------------------------------------------------------------------------
    def call(self, name: str, args: tuple, kwargs: dict, timeout_s: float = DEFAULT_CALL_TIMEOUT_S):
        """Call the learner's `name`; its value, or the exception it raised, rebuilt here."""
        with self._lock:
            return self._call(name, args, kwargs, timeout_s)

    def _call(self, name: str, args: tuple, kwargs: dict, timeout_s: float):
        if not self.alive:
            self.close()
            self.start()
        try:
            reply = self._ask(
                {"op": "call", "name": name, "args": list(args), "kwargs": dict(kwargs)},
                timeout_s,
                f"your `{name}`",
            )
        except CallTimeout:
            raise SubmissionError(
                f"timed out: your `{name}` did not return within {timeout_s:.0f} s and was "
                "stopped (the check's time limit; a loop that never ends, even inside C code, "
                "is stopped from outside). Does your code finish?"
            ) from None
        self._check_strays(f"your `{name}`")
        if "missing" in reply:
            raise MissingName(name)
        if "error" in reply:
            raise _rebuild_exception(reply["error"])
        return reply.get("value")

    def _ask(self, message: dict, timeout_s: float, who: str) -> dict:
        self.seq += 1
        message["seq"] = self.seq
        try:
            _send(self.sock, wire.dumps(message))
        except wire.WireError as exc:
            raise SubmissionError(f"the grader could not send {who} its arguments: {exc}") from None
        except OSError:
            pass  # the process is gone: reported below
        memory = {"exceeded": False}

        def watch():
            cap = self.limits.memory_bytes
            if cap and self.alive and contain.tree_rss_bytes(self.proc.pid) > cap:
                memory["exceeded"] = True
                self._kill()

        try:
            blob = _recv(self.sock, time.monotonic() + timeout_s, watch)
            reply = wire.loads(blob)
        except (EOFError, OSError, wire.WireError) as exc:
            self._kill()
            if memory["exceeded"]:
                raise SubmissionError(self._memory_hint(who)) from None
            raise SubmissionError(self._death(who, exc)) from None
        except BaseException:  # our time limit, the check's, ^C: its state is unknown now
            self._kill()
            raise
        if not isinstance(reply, dict) or reply.get("seq") != self.seq:
            self._kill()
            raise SubmissionError(f"{who} answered out of turn: the grader stopped it")
        from labsupport.grading import flags

        flags.collect(reply.get("flags") or [])
        err = reply.get("error")
        if isinstance(err, dict) and err.get("type") == "MemoryError":
            raise SubmissionError(self._memory_hint(who))
        return reply

    def _memory_hint(self, who: str) -> str:
        cap = (self.limits.memory_bytes or 0) / 2**30
        return (
            f"{who} ran out of memory: the grader gives learner code at most {cap:.0f} GiB. "
            "Work on the evidence you are given instead of building something that large"
        )

    def _death(self, who: str, exc: BaseException) -> str:
        code = self.proc.poll() if self.proc is not None else None
        if isinstance(exc, wire.WireError):
            return f"{who} sent back something that is not data: {exc}"
        return (
            f"{who} ended the grader's process for your code (exit status {code}): do not "
            "exit, kill or exec from an exercise"
        )

    def _kill(self) -> None:
        if self.proc is not None:
            if self.on_stop is not None:
                self.on_stop(self.proc.pid)
            self.killed += contain.kill_tree(self.proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    def _check_strays(self, who: str) -> None:
        if self.proc is None:
            return
        deadline = time.monotonic() + 0.3  # a child that is exiting gets a moment
        left = contain.strays(self.proc.pid)
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = contain.strays(self.proc.pid)
        if not left:
            return
        names = [contain.describe_process(p) for p in left]
        for p in left:
            with contextlib.suppress(Exception):
                p.kill()
        from labsupport.grading import flags

        flags.collect([{"kind": "process", "detail": f"{len(names)} left running", "where": ""}])
        shown = "; ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        raise SubmissionError(
            f"{who} left {len(names)} process(es) running ({shown}); the grader killed them. "
            "An exercise must not leave processes behind"
        )


# ---- the process side -----------------------------------------------------------------------


def _describe(exc: BaseException, label: str) -> dict:
    where = None
    tb = exc.__traceback__
    from labsupport.grading import flags

    while tb is not None:
        if tb.tb_frame.f_code.co_filename == label:
            where = flags._where(label, tb.tb_lineno)
        tb = tb.tb_next
    message = str(exc).strip()[:2000]
    if isinstance(exc, SystemExit):
        message = f"your code called sys.exit({exc.code!r})"
    return {"type": type(exc).__name__, "message": message, "where": where}


def serve(fd: int) -> None:
    """Answer load and call requests on socket `fd` until it closes."""
    from labsupport.grading import flags

    sock = socket.socket(fileno=fd)
    module = None
    label = "<exercises>"
    while True:
        try:
            request = wire.loads(_recv(sock))
        except (EOFError, OSError):
            return
        reply: dict = {"seq": request.get("seq")}
        if request.get("op") == "load":
            label = str(request["label"])
            flags.install(label, request["source"])
            module = types.ModuleType("srelab_exercises")
            module.__file__ = label
            sys.modules["srelab_exercises"] = module
            try:
                exec(compile(request["source"], label, "exec"), module.__dict__)
                reply["names"] = sorted(k for k in vars(module) if not k.startswith("_"))
            except BaseException as exc:  # noqa: BLE001 - reported to the grader
                reply["error"] = _describe(exc, label)
        else:
            fn = getattr(module, str(request.get("name")), None) if module else None
            if fn is None or not callable(fn):
                reply["missing"] = request.get("name")
            else:
                try:
                    reply["value"] = fn(*request.get("args", ()), **request.get("kwargs", {}))
                except BaseException as exc:  # noqa: BLE001 - reported to the grader
                    reply["error"] = _describe(exc, label)
        reply["flags"] = flags.take()
        try:
            blob = wire.dumps(reply)
        except wire.WireError as exc:
            reply.pop("value", None)
            reply["error"] = {
                "type": "TypeError",
                "message": f"`{request.get('name')}` must return data: {exc}",
                "where": None,
            }
            blob = wire.dumps(reply)
        _send(sock, blob)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
