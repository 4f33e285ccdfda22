"""Container probes with the kubelet's semantics, run against real processes.

    >>> from labsupport.k8s.probes import Probe, TCPSocket, ProbeTarget, run_probe
    >>> target = ProbeTarget(ports={8000: 1})          # container port 8000 -> host port 1
    >>> run_probe(TCPSocket(8000), target, timeout_s=0.5).ok
    False

Handlers, as documented at https://kubernetes.io/docs/concepts/configuration/
liveness-readiness-startup-probes and .../tasks/configure-pod-container/
configure-liveness-readiness-startup-probes:
- `Exec(command)`: success when the command exits 0 within timeoutSeconds (run with the
  container's environment; on timeout its process group is killed).
- `HTTPGet(path, port)`: success when 200 <= status < 400 (redirects are not followed; a 3xx is
  already a success), timeout covers connect + headers, at most 10 KiB of body is read.
- `TCPSocket(port)`: success when the TCP handshake completes. The kernel completes it from the
  listen backlog, so a wedged process that still holds its socket passes.
- `Call(fn)`: a Python callable (the learner's probe logic): `fn(target)` returns a bool or
  `(bool, message)`; an exception is a failure. It cannot be killed: on timeout the probe fails
  and the next tick fails too while the old call is still running.

Probe timing (`ProbeWorker`): first probe initialDelaySeconds after the container started, then
every periodSeconds (missed ticks are skipped, as with the kubelet's ticker); the result flips
only after failureThreshold consecutive failures or successThreshold consecutive successes.
Readiness starts as failure, liveness as success, startup as not started. All seconds are
manifest seconds, scaled by `Timing`.
"""

from __future__ import annotations

import collections
import http.client
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from labsupport.k8s.events import Timing

USER_AGENT = "kube-probe/1.37"
MAX_BODY_BYTES = 10 * 1024


@dataclass(frozen=True)
class Exec:
    command: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "command", tuple(self.command))

    def describe(self) -> str:
        return "exec [" + " ".join(self.command) + "]"


@dataclass(frozen=True)
class HTTPGet:
    path: str = "/"
    port: int | str | None = None  # container port number or name; None: the first port
    host: str = "127.0.0.1"
    http_headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        return f"http-get http://:{self.port if self.port is not None else ''}{self.path}"


@dataclass(frozen=True)
class TCPSocket:
    port: int | str | None = None
    host: str = "127.0.0.1"

    def describe(self) -> str:
        return f"tcp-socket :{self.port if self.port is not None else ''}"


@dataclass(frozen=True)
class Call:
    fn: Callable
    name: str = ""

    def describe(self) -> str:
        return f"call {self.name or getattr(self.fn, '__name__', 'fn')}()"


Handler = Exec | HTTPGet | TCPSocket | Call


@dataclass(frozen=True)
class Probe:
    """A probe spec; field names and defaults are the Kubernetes ones (manifest seconds)."""

    handler: Handler
    initial_delay_seconds: float = 0
    period_seconds: float = 10
    timeout_seconds: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: float | None = None  # probe-level override (k8s 1.25+)

    def __post_init__(self):
        if self.period_seconds <= 0 or self.timeout_seconds <= 0:
            raise ValueError("periodSeconds and timeoutSeconds must be > 0")
        if self.success_threshold < 1 or self.failure_threshold < 1:
            raise ValueError("successThreshold and failureThreshold must be >= 1")

    def describe(self) -> str:
        """As `kubectl describe pod` prints it."""
        return (
            f"{self.handler.describe()} delay={self.initial_delay_seconds:g}s "
            f"timeout={self.timeout_seconds:g}s period={self.period_seconds:g}s "
            f"#success={self.success_threshold} #failure={self.failure_threshold}"
        )


@dataclass
class ProbeTarget:
    """Where a probe runs: the pod's address, its port map and its container environment."""

    host: str = "127.0.0.1"
    ports: dict = field(default_factory=dict)  # container port (int) or port name -> host port
    env: dict | None = None
    pod_name: str = ""

    def resolve_port(self, port: int | str | None) -> int:
        if port is None:
            if not self.ports:
                raise ValueError("the probe names no port and the container declares none")
            return next(iter(self.ports.values()))
        if port in self.ports:
            return self.ports[port]
        if isinstance(port, str) and port.isdigit() and int(port) in self.ports:
            return self.ports[int(port)]
        raise ValueError(f"port {port!r} is not a declared container port ({list(self.ports)})")

    @property
    def port(self) -> int:
        """The first declared port's host port (what `$(PORT)` expands to)."""
        return self.resolve_port(None)

    def url(self, path: str = "/", port: int | str | None = None) -> str:
        return f"http://{self.host}:{self.resolve_port(port)}{path}"


@dataclass
class ProbeResult:
    ok: bool
    message: str
    duration_s: float


def run_probe(handler: Handler, target: ProbeTarget, timeout_s: float) -> ProbeResult:
    """Run one probe now; never raises (an error is a failed probe with its message)."""
    t0 = time.monotonic()
    try:
        if isinstance(handler, Exec):
            ok, msg = _exec(handler, target, timeout_s)
        elif isinstance(handler, HTTPGet):
            ok, msg = _http(handler, target, timeout_s)
        elif isinstance(handler, TCPSocket):
            ok, msg = _tcp(handler, target, timeout_s)
        elif isinstance(handler, Call):
            ok, msg = _call(handler, target, timeout_s)
        else:
            ok, msg = False, f"unknown probe handler {handler!r}"
    except Exception as e:  # a probe error is a probe failure, as in the kubelet
        ok, msg = False, f"{type(e).__name__}: {e}"
    return ProbeResult(ok, msg, time.monotonic() - t0)


def _exec(h: Exec, target: ProbeTarget, timeout_s: float) -> tuple[bool, str]:
    env = dict(os.environ if target.env is None else target.env)
    try:
        proc = subprocess.Popen(
            h.command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except FileNotFoundError:
        return False, f'exec: "{h.command[0]}": executable file not found in $PATH'
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return False, f"command {shlex.join(h.command)!r} timed out"
    text = out.decode(errors="replace").strip()[-500:]
    if proc.returncode == 0:
        return True, text
    return False, text or f"command {shlex.join(h.command)!r} exited with code {proc.returncode}"


def _http(h: HTTPGet, target: ProbeTarget, timeout_s: float) -> tuple[bool, str]:
    port = target.resolve_port(h.port)
    url = f"http://{h.host}:{port}{h.path}"
    deadline = time.monotonic() + timeout_s
    conn = http.client.HTTPConnection(h.host, port, timeout=timeout_s)
    try:
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
        headers.update(dict(h.http_headers))
        try:
            conn.connect()
        except ConnectionRefusedError:
            return False, f'Get "{url}": dial tcp {h.host}:{port}: connect: connection refused'
        except TimeoutError:
            return False, f'Get "{url}": dial tcp {h.host}:{port}: i/o timeout'
        try:
            conn.request("GET", h.path, headers=headers)
            conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
            resp = conn.getresponse()
            conn.sock and conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
            body = resp.read(MAX_BODY_BYTES)
        except TimeoutError:
            return False, (
                f'Get "{url}": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)"
            )
        except ConnectionResetError:
            return False, f'Get "{url}": read: connection reset by peer'
        except (http.client.RemoteDisconnected, http.client.IncompleteRead):
            return False, f'Get "{url}": EOF'
        if 200 <= resp.status < 400:
            return True, f"HTTP {resp.status}"
        detail = body.decode(errors="replace").strip()[:200]
        return False, f"HTTP probe failed with statuscode: {resp.status}" + (
            f" ({detail})" if detail else ""
        )
    finally:
        conn.close()


def _tcp(h: TCPSocket, target: ProbeTarget, timeout_s: float) -> tuple[bool, str]:
    port = target.resolve_port(h.port)
    try:
        with socket.create_connection((h.host, port), timeout=timeout_s):
            return True, f"connected to {h.host}:{port}"
    except ConnectionRefusedError:
        return False, f"dial tcp {h.host}:{port}: connect: connection refused"
    except TimeoutError:
        return False, f"dial tcp {h.host}:{port}: i/o timeout"


_BUSY: dict[tuple, threading.Thread] = {}  # Call probes still running, per handler and pod


def _call(h: Call, target: ProbeTarget, timeout_s: float) -> tuple[bool, str]:
    key = (id(h), target.pod_name, tuple(target.ports.items()))
    busy = _BUSY.get(key)
    if busy is not None and busy.is_alive():
        return False, f"{h.describe()} is still running from an earlier tick"
    box: dict = {}

    def run():
        try:
            box["value"] = h.fn(target)
        except BaseException as e:  # the learner's code may raise anything
            box["error"] = f"{type(e).__name__}: {e}"

    t = threading.Thread(target=run, name=f"probe-{h.describe()}", daemon=True)
    _BUSY[key] = t
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        return False, f"{h.describe()} timed out after {timeout_s:.2f}s"
    _BUSY.pop(key, None)
    if "error" in box:
        return False, box["error"]
    value = box.get("value")
    if isinstance(value, tuple) and len(value) == 2:
        return bool(value[0]), str(value[1])
    return bool(value), "" if value else f"{h.describe()} returned {value!r}"


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with start_new_session=True, with everything it spawned."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class ProbeState:
    """The kubelet's threshold logic: flip only after N consecutive opposite results."""

    def __init__(self, success_threshold: int, failure_threshold: int, initial: bool | None):
        self.success_threshold = success_threshold
        self.failure_threshold = failure_threshold
        self.value = initial  # None: unknown (startup probe before its first success)
        self._last: bool | None = None
        self._run = 0

    def observe(self, ok: bool) -> bool:
        """Record one probe result; True when the probe's value changed."""
        self._run = self._run + 1 if ok == self._last else 1
        self._last = ok
        needed = self.success_threshold if ok else self.failure_threshold
        if self._run >= needed and self.value != ok:
            self.value = ok
            return True
        return False


class ProbeWorker:
    """One probe of one container instance, on its own thread (as the kubelet does).

    on_result(kind, result, state, changed) is called after every probe; returning False stops
    the worker. gate() returning False skips a tick (liveness/readiness before startup).
    """

    INITIAL = {"readiness": False, "liveness": True, "startup": None}

    def __init__(
        self,
        kind: str,
        probe: Probe,
        target: ProbeTarget,
        timing: Timing,
        started_at: float,
        on_result: Callable,
        gate: Callable[[], bool] | None = None,
    ):
        self.kind, self.probe, self.target, self.timing = kind, probe, target, timing
        self.started_at = started_at  # time.monotonic() of the container start
        self.on_result, self.gate = on_result, gate
        self.state = ProbeState(
            probe.success_threshold, probe.failure_threshold, self.INITIAL[kind]
        )
        # (seconds since the container started, result), the latest 1000
        self.results: collections.deque = collections.deque(maxlen=1000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{kind}-probe", daemon=True)

    def start(self) -> ProbeWorker:
        self._thread.start()
        return self

    def stop(self, join: bool = True) -> None:
        self._stop.set()
        if join and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        period_s = self.timing.real_s(self.probe.period_seconds)
        timeout_s = self.timing.probe_timeout_s(self.probe.timeout_seconds)
        due = self.started_at + self.timing.real_s(self.probe.initial_delay_seconds)
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            if self.gate is None or self.gate():
                result = run_probe(self.probe.handler, self.target, timeout_s)
                if self._stop.is_set():
                    return
                self.results.append((time.monotonic() - self.started_at, result))
                changed = self.state.observe(result.ok)
                if self.on_result(self.kind, result, self.state.value, changed) is False:
                    return
            due += period_s
            now = time.monotonic()
            if due < now:  # a slow probe: skip the ticks it overran, keep the phase
                due += period_s * ((now - due) // period_s + 1)
