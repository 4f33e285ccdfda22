"""Start the server as a real subprocess for a lab or a test, and always clean it up.

    >>> import httpx
    >>> from labsupport.serving.launcher import serve_subprocess
    >>> with serve_subprocess("--min-step-ms", "5") as srv:
    ...     httpx.get(srv.base_url + "/health").status_code
    200

The child runs `python -m labsupport.serving.serve_cli --port 0 ...` in a new session (its own
process group), and the context manager waits for its `listening on URL` line. Each run gets a
fresh admin token, handed to the child in its environment (never on the command line);
`srv.admin_token`, `srv.admin_headers` and `srv.set_fault(name, value)` use it. On exit, even on
an exception, the whole group gets SIGTERM, then SIGKILL after `stop_timeout_s`, and is waited
for: no process, port or pipe is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from labsupport.serving.admin import admin_headers, new_token, post_fault, token_env

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
_LISTENING = re.compile(r"^listening on (http://\S+)")
_STARTUP = re.compile(r"^startup (\{.*\})")


class ServerStartError(RuntimeError):
    """The server exited or did not start listening in time; the message holds its output."""


@dataclass
class ServerProcess:
    base_url: str
    pid: int
    proc: subprocess.Popen
    startup: dict = field(default_factory=dict)  # start-up phases in seconds, as the server printed
    _lines: list[str] = field(default_factory=list)

    admin_token: str | None = None  # this run's token for /admin (see serving.admin)

    @property
    def admin_headers(self) -> dict[str, str]:
        """Headers for a request to /admin: the token and the JSON content type."""
        return admin_headers(self.admin_token)

    def set_fault(
        self, name: str, value: float | None = None, *, enabled: bool = True, timeout_s=10.0
    ) -> dict:
        """Switch a fault on (or off) at run time; returns the active faults."""
        r = post_fault(self.base_url, self.admin_token, name, value, enabled=enabled,
                       timeout_s=timeout_s)  # fmt: skip
        if r.status_code != 200:
            raise RuntimeError(f"POST /admin/fault answered {r.status_code}: {r.text}")
        return r.json()["active"]

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return "".join(self._lines)

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait(self, timeout_s: float) -> int | None:
        """The exit code, or None if still running after `timeout_s`."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def alive(self) -> bool:
        return self.proc.poll() is None


def server_command(*args: str, port: int = 0) -> list[str]:
    return [sys.executable, "-m", "labsupport.serving.serve_cli", "--port", str(port), *args]


def child_env(env: dict | None = None) -> dict:
    """The environment for a server child: `labsupport` importable, output unbuffered."""
    base = dict(os.environ if env is None else env)
    paths = [p for p in base.get("PYTHONPATH", "").split(os.pathsep) if p]
    if _PACKAGE_PARENT not in paths:
        paths.insert(0, _PACKAGE_PARENT)
    base["PYTHONPATH"] = os.pathsep.join(paths)
    base["PYTHONUNBUFFERED"] = "1"
    return base


def _pump(stream, lines: list[str], events: queue.Queue, echo: bool) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line)
        events.put(line)
        if echo:
            print(line, end="", flush=True)
    events.put(None)


def stop_group(proc: subprocess.Popen, stop_timeout_s: float = 10.0) -> int | None:
    """SIGTERM the process group, SIGKILL it after `stop_timeout_s`, reap; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(stop_timeout_s)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, if any
    try:
        return proc.wait(5.0)
    except subprocess.TimeoutExpired:
        return None


@contextlib.contextmanager
def serve_subprocess(
    *args: str,
    startup_timeout_s: float = 60.0,
    stop_timeout_s: float = 10.0,
    sigterm_handler=None,
    stream_handler=None,
    env: dict | None = None,
    echo: bool = False,
) -> Iterator[ServerProcess]:
    """Run `srelab serve --port 0 *args` until the block ends; yields a ServerProcess.

    `sigterm_handler`: a picklable callable or reference (e.g. `lab.ref("on_sigterm")`), or a
    spec string (`drain`, `module:function`), passed to the child's `--sigterm-handler`.
    `stream_handler`: the same kinds, or a function defined in a notebook (sent by code with
    `labsupport.portable`), passed to `--stream-handler`.
    """
    from labsupport.portable import sendable
    from labsupport.serving.shutdown import encode_handler

    extra = []
    if sigterm_handler is not None:
        spec = (
            sigterm_handler if isinstance(sigterm_handler, str) else encode_handler(sigterm_handler)
        )
        extra = ["--sigterm-handler", spec]
    if stream_handler is not None:
        sent = sendable(stream_handler)
        extra += ["--stream-handler", sent if isinstance(sent, str) else encode_handler(sent)]
    token = new_token()
    env = {**(os.environ if env is None else env), **token_env(token)}
    proc = subprocess.Popen(
        server_command(*args, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        start_new_session=True,
        env=child_env(env),
    )
    lines: list[str] = []
    events: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines, events, echo), daemon=True)
    reader.start()
    try:
        url, startup = None, {}
        deadline = time.monotonic() + startup_timeout_s
        while url is None:
            try:
                line = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise ServerStartError(
                    f"server not listening after {startup_timeout_s:.0f} s; output:\n"
                    + "".join(lines)[-4000:]
                ) from None
            if line is None:
                proc.wait(5.0)
                raise ServerStartError(
                    f"server exited with {proc.returncode} before listening; output:\n"
                    + "".join(lines)[-4000:]
                )
            if m := _STARTUP.match(line):
                startup = json.loads(m.group(1))
            if m := _LISTENING.match(line):
                url = m.group(1)
        yield ServerProcess(url, proc.pid, proc, startup, lines, admin_token=token)
    finally:
        stop_group(proc, stop_timeout_s)
        reader.join(5.0)
        if proc.stdout is not None:
            proc.stdout.close()
