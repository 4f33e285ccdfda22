"""Lab 288's model server: how big a start is, the incident's pod, a debug start measured.

    >>> from labsupport.scenarios.killed_while_loading import starts
    >>> starts.ServerSize(256, 3.0).args()
    ['--weights-mb', '256', '--fault', 'slow_start=3']
    >>> "startupProbe" in starts.incident_manifest(starts.ServerSize(256, 3.0))
    False
    >>> record = starts.debug_start(starts.ServerSize(64, 1.0))      # doctest: +SKIP
    >>> record.evidence()["logs"][-1]                                # doctest: +SKIP
    '2026-11-25T14:02:14.120331457Z listening on http://127.0.0.1:41237'

The server is the real one (`labsupport.serving.serve_cli`): on every start it writes its
checkpoint (`--weights-mb`, as a pod without a model cache downloads it), reads it, moves it to
the device (CUDA when present), warms up, then sleeps `--fault slow_start=S` seconds, standing
in for torch.compile and CUDA-graph capture, and only then listens on its port, as vLLM does.
`ServerSize` says how big. `debug_start` measures one start with no probes (a debug pod): the
evidence an operator has and, beside it, the truth (when the port really opened, by connecting
every 20 ms). The evidence is written as Kubernetes writes it: the container's start as the
container runtime records it (CRI `ContainerStatus.started_at`, nanoseconds, printed as RFC 3339
with trailing zeros dropped; the Pod's own `status.containerStatuses[].startedAt` is rounded to
the second, too coarse for a cluster running 10x fast) and the logs as
`kubectl logs --timestamps` prints them (the kubelet's RFC3339NanoFixed: nine fractional
digits, pkg/kubelet/kuberuntime/logs/logs.go).
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from labsupport import isolate, progress
from labsupport.k8s.spec import expand, free_port
from labsupport.serving.launcher import child_env, server_command, stop_group

TIME_SCALE = 0.1  # real seconds per manifest second: the lab's cluster runs 10x fast
LISTENING = "listening on "
STARTUP = "startup "


@dataclass(frozen=True)
class ServerSize:
    """How slow a start is: a checkpoint of `weights_mb` written and loaded, then `compile_s`."""

    weights_mb: float = 256
    compile_s: float = 3.0  # the slow_start fault: stands in for torch.compile + graph capture

    def args(self) -> list[str]:
        return [
            "--weights-mb",
            f"{self.weights_mb:g}",
            "--fault",
            f"slow_start={self.compile_s:g}",
        ]

    def command(self) -> list[str]:
        """The container's argv, with `$(PORT)` for the supervisor to expand."""
        argv = server_command(*self.args())
        return [*argv[: argv.index("--port") + 1], "$(PORT)", *argv[argv.index("--port") + 2 :]]


INCIDENT = ServerSize(256, 3.0)  # seed 0's server: ~4-6 s on a 2-core CPU machine

_MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: llm-server
  labels:
    app: llm-server
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: server
    image: registry.example.com/llm-server:2.3.1
    command: [python, -m, labsupport.serving.serve_cli]
    args: [--port, $(PORT), --weights-mb, "{weights_mb:g}", --fault, slow_start={compile_s:g}]
    ports:
    - name: http
      containerPort: 8000
    readinessProbe:
      httpGet: {{path: /ready, port: http}}
      periodSeconds: 5
    livenessProbe:
      httpGet: {{path: /health, port: http}}
      initialDelaySeconds: 5
      periodSeconds: 10
      timeoutSeconds: 1
      failureThreshold: 3
"""


def incident_manifest(size: ServerSize = INCIDENT) -> str:
    """The pod's manifest as production has it (YAML), running a server of `size`."""
    return _MANIFEST.format(weights_mb=size.weights_mb, compile_s=size.compile_s)


# ---- timestamps as Kubernetes prints them ----------------------------------------------------
def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )


def rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped, none if zero."""
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return _utc(ns) + (f".{fraction}" if fraction else "") + "Z"


def rfc3339_nano_fixed(ns: int) -> str:
    """The kubelet's RFC3339NanoFixed in UTC (`kubectl logs --timestamps`): nine digits."""
    return f"{_utc(ns)}.{ns % 1_000_000_000:09d}Z"


def tcp_connects(port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def phases_of(lines: list[str]) -> dict:
    """The server's `startup {...}` line (its own phase timers) as a dict; {} if none yet."""
    for line in lines:
        if line.startswith(STARTUP):
            try:
                return json.loads(line[len(STARTUP) :])
            except ValueError:
                return {}
    return {}


# ---- one start, measured -------------------------------------------------------------------
@dataclass
class StartRecord:
    """One measured start: what an operator can see, and the truth measured beside it."""

    size: ServerSize
    started_at: str  # the container's start, RFC 3339 with nanoseconds (the runtime's record)
    logs: list[str]  # `kubectl logs --timestamps`: "<RFC 3339, 9 digits> <line>", until it served
    port_open_s: float  # ground truth: seconds from the start until a TCP connect succeeded
    phases: dict = field(default_factory=dict)  # the server's own `startup {...}` line

    def evidence(self) -> dict:
        """What the learner gets: {"startedAt": ..., "logs": [...]}."""
        return {"startedAt": self.started_at, "logs": list(self.logs)}


def debug_start(size: ServerSize = INCIDENT, *, timeout_s: float = 90.0) -> StartRecord:
    """Start the server once with no probes (a debug pod), measure it, stop it.

    The truth, `port_open_s`, comes from connecting to the port every 20 ms from the moment
    the process was started; the timestamped logs are recorded as the lines arrive.
    """
    port = free_port()
    with isolate.temp_dir() as tmp:
        env = child_env()
        env["TMPDIR"] = str(tmp)  # the checkpoint is written here: removed whatever happens
        argv = [expand(a, {"PORT": str(port)}) for a in size.command()]
        lines: list[tuple[int, str]] = []
        started_ns = time.time_ns()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def read() -> None:
            for raw in iter(proc.stdout.readline, b""):
                lines.append((time.time_ns(), raw.decode(errors="replace").rstrip("\n")))

        reader = threading.Thread(target=read, name="debug-start-logs", daemon=True)
        reader.start()
        port_open_s = None
        try:
            while time.monotonic() - t0 < timeout_s and proc.poll() is None:
                if tcp_connects(port):
                    port_open_s = time.monotonic() - t0
                    break
                time.sleep(0.02)
            deadline = time.monotonic() + 5.0
            while port_open_s is not None and time.monotonic() < deadline:
                if any(text.startswith(LISTENING) for _, text in lines):
                    break
                time.sleep(0.01)
            cut = time.time_ns()
            exited = proc.poll()
        finally:
            stop_group(proc, stop_timeout_s=5.0)
            reader.join(5.0)
            proc.stdout.close()
    if port_open_s is None:
        tail = "\n".join(text for _, text in lines[-20:])
        why = f"exited with {exited}" if exited is not None else f"was not up in {timeout_s:g} s"
        raise RuntimeError(f"the model server {why}; its output:\n{tail}")
    kept = [(t, text) for t, text in lines if t <= cut]
    return StartRecord(
        size,
        rfc3339_nano(started_ns),
        [f"{rfc3339_nano_fixed(t)} {text}" for t, text in kept],
        port_open_s,
        phases_of([text for _, text in kept]),
    )


def debug_starts(sizes: list[ServerSize], *, at_once: bool = True) -> list[StartRecord]:
    """One debug start per size, all at once (as debug pods on the same node) or one by one.

    Started together they share the machine's cores, so each is slower than alone, as on a
    busy node; each is still measured on its own. A progress bar counts the finished starts.
    """
    with progress.bar(len(sizes), "debug starts", unit="start") as bar:
        if not at_once:
            records = []
            for size in sizes:
                records.append(debug_start(size))
                bar.update()
            return records
        with concurrent.futures.ThreadPoolExecutor(len(sizes)) as pool:
            futures = [pool.submit(debug_start, size) for size in sizes]
            for _ in concurrent.futures.as_completed(futures):
                bar.update()
            return [f.result() for f in futures]
