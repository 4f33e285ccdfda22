"""Container probes with the kubelet's semantics, run against real processes.

    >>> from labsupport.k8s.probes import Probe, TCPSocket, ProbeTarget, run_probe
    >>> target = ProbeTarget(ports={8000: 1})          # container port 8000 -> host port 1
    >>> run_probe(TCPSocket(8000), target, timeout_s=0.5).ok
    False

Handlers, as documented at https://kubernetes.io/docs/concepts/configuration/
liveness-readiness-startup-probes and .../tasks/configure-pod-container/
configure-liveness-readiness-startup-probes, and as pkg/probe implements them:
- `Exec(command)`: success when the command exits 0 within timeoutSeconds (run with the
  container's environment; on timeout its process group is killed and the probe fails). A
  command that cannot be started (no such executable) is a prober *error*, not a failure.
- `HTTPGet(path, port)`: the kubelet's HTTP probe (`labsupport.k8s.http_probe`): same-host
  redirects followed, 200-399 success, a 3xx it did not follow a warning (still a success).
- `TCPSocket(port)`: success when the TCP handshake completes. The kernel completes it from the
  listen backlog, so a wedged process that still holds its socket passes.
- `Call(fn)`: a Python callable (the learner's probe logic): `fn(target)` returns a bool or
  `(bool, message)`; an exception is a failure (the callable stands for the container's health
  endpoint). It cannot be killed: on timeout the probe fails and the next tick fails too while
  the old call is still running.

`run_probe` returns a `ProbeResult`: `state` is the kubelet's probe result (success, warning,
failure, unknown) and `errored` marks a prober error (a named port the container does not
declare, an exec binary that does not exist): the kubelet throws those results away
(pkg/kubelet/prober/worker.go doProbe: "Prober error, throw away the result"), so they neither
fail nor pass a probe. A numbered port the container does not declare is probed anyway and
finds nobody listening: a failure, as on a node.

Probe timing and thresholds (`ProbeWorker`, `ProbeState`) live in `labsupport.k8s.probe_worker`
and are importable from here too. All seconds are manifest seconds, scaled by `Timing`.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from labsupport.k8s.http_probe import http_probe


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
        """The host port for a container port, by number or name (probe.ResolveContainerPort).

        A name the container does not declare raises `PortNotFound` (a prober error in the
        kubelet); a number it does not declare raises `UndeclaredPort` (on a node the probe
        would go to that port of the pod and find nobody listening).
        """
        if port is None:
            if not self.ports:
                raise PortNotFound("the probe names no port and the container declares none")
            return next(iter(self.ports.values()))
        if port in self.ports:
            return self.ports[port]
        if isinstance(port, str):
            if port.isdigit() and int(port) in self.ports:
                return self.ports[int(port)]
            if not port.isdigit():
                raise PortNotFound(f'strconv.Atoi: parsing "{port}": invalid syntax')
            port = int(port)
        raise UndeclaredPort(port, f"port {port!r} is not a declared container port")

    @property
    def port(self) -> int:
        """The first declared port's host port (what `$(PORT)` expands to)."""
        return self.resolve_port(None)

    def url(self, path: str = "/", port: int | str | None = None) -> str:
        return f"http://{self.host}:{self.resolve_port(port)}{path}"


class PortNotFound(ValueError):
    """The probe names a port the container does not declare."""


class UndeclaredPort(ValueError):
    def __init__(self, port: int, message: str):
        super().__init__(message)
        self.port = port


class ProbeError(Exception):
    """The prober could not run the probe (not a verdict on the container)."""


@dataclass
class ProbeResult:
    ok: bool  # success or warning
    message: str  # the kubelet's output: a body, a command's output, or what went wrong
    duration_s: float
    errored: bool = False  # a prober error: the kubelet throws the result away
    state: str = ""  # the probe.Result: success | warning | failure | unknown

    def __post_init__(self):
        if not self.state:
            self.state = "unknown" if self.errored else ("success" if self.ok else "failure")

    @property
    def warning(self) -> bool:
        """A success the kubelet reports with a ProbeWarning event (an unfollowed redirect)."""
        return self.state == "warning"


def run_probe(handler: Handler, target: ProbeTarget, timeout_s: float) -> ProbeResult:
    """Run one probe now; never raises: a failure, or an errored result with its message."""
    t0 = time.monotonic()
    errored = False
    try:
        if isinstance(handler, Exec):
            state, msg = _exec(handler, target, timeout_s)
        elif isinstance(handler, HTTPGet):
            state, msg, errored = _http(handler, target, timeout_s)
        elif isinstance(handler, TCPSocket):
            state, msg = _tcp(handler, target, timeout_s)
        elif isinstance(handler, Call):
            state, msg = _call(handler, target, timeout_s)
        else:  # prober.go runProbe: "missing probe handler" is an error
            raise ProbeError(f"missing probe handler {handler!r}")
    except UndeclaredPort as e:  # nobody listens on a port the container does not declare
        host = getattr(handler, "host", target.host)
        state = "failure"
        msg = f"dial tcp {host}:{e.port}: connect: connection refused ({e})"
    except (PortNotFound, ProbeError) as e:
        state, msg, errored = "unknown", str(e), True
    except Exception as e:  # our own bug, reported as a prober error rather than a verdict
        state, msg, errored = "unknown", f"{type(e).__name__}: {e}", True
    ok = state in ("success", "warning")
    return ProbeResult(ok, msg, time.monotonic() - t0, errored, state)


def _exec(h: Exec, target: ProbeTarget, timeout_s: float) -> tuple[str, str]:
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
    except OSError as e:  # as the CRI reports it: the kubelet's prober gets an error
        why = "executable file not found in $PATH" if isinstance(e, FileNotFoundError) else e
        raise ProbeError(
            "OCI runtime exec failed: exec failed: unable to start container process: "
            f'exec: "{h.command[0]}": {why}: unknown'
        ) from None
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:  # ExecProbeTimeout (GA): a timeout is a failure
        kill_group(proc)
        return "failure", f"command {shlex.join(h.command)!r} timed out"
    text = out.decode(errors="replace").strip()[-500:]
    if proc.returncode == 0:
        return "success", text
    why = f"command {shlex.join(h.command)!r} exited with code {proc.returncode}"
    return "failure", text or why


def _http(h: HTTPGet, target: ProbeTarget, timeout_s: float) -> tuple[str, str, bool]:
    port = target.resolve_port(h.port)
    out = http_probe(h.host, port, h.path, h.http_headers, timeout_s)
    return out.state, out.message, out.error


def _tcp(h: TCPSocket, target: ProbeTarget, timeout_s: float) -> tuple[str, str]:
    port = target.resolve_port(h.port)
    try:
        with socket.create_connection((h.host, port), timeout=timeout_s):
            return "success", f"connected to {h.host}:{port}"
    except ConnectionRefusedError:
        return "failure", f"dial tcp {h.host}:{port}: connect: connection refused"
    except TimeoutError:
        return "failure", f"dial tcp {h.host}:{port}: i/o timeout"
    except OSError as e:  # tcp.go: every dial error is a failure
        return "failure", f"dial tcp {h.host}:{port}: {e}"


_BUSY: dict[tuple, threading.Thread] = {}  # Call probes still running, per handler and pod


def _call(h: Call, target: ProbeTarget, timeout_s: float) -> tuple[str, str]:
    key = (id(h), target.pod_name, tuple(target.ports.items()))
    busy = _BUSY.get(key)
    if busy is not None and busy.is_alive():
        return "failure", f"{h.describe()} is still running from an earlier tick"
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
        return "failure", f"{h.describe()} timed out after {timeout_s:.2f}s"
    _BUSY.pop(key, None)
    if "error" in box:
        return "failure", box["error"]
    value = box.get("value")
    if isinstance(value, tuple) and len(value) == 2:
        return ("success" if value[0] else "failure"), str(value[1])
    return ("success", "") if value else ("failure", f"{h.describe()} returned {value!r}")


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


def __getattr__(name: str):
    """`ProbeState` and `ProbeWorker` moved to `probe_worker`; old imports keep working."""
    if name in ("ProbeState", "ProbeWorker"):
        from labsupport.k8s import probe_worker

        return getattr(probe_worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
