"""Lab 288's workload: a model server that loads for seconds, and the probes that judge it.

    >>> from labsupport.scenarios.killed_while_loading import starts as sb
    >>> sb.startup_budget_seconds(sb.LIVENESS_ONLY)  # what the incident's probes allow a start
    35.0
    >>> start = sb.debug_start(sb.SMALL)             # doctest: +SKIP
    >>> start.evidence()["logs"][-1]                 # doctest: +SKIP
    '2026-11-25T14:02:14.120331Z listening on http://127.0.0.1:41237'

The server is the real one (`labsupport.serving.serve_cli`): on every start it writes its
checkpoint (`--weights-mb`, as a pod without a model cache downloads it), reads it, moves it to
the device (CUDA when present), warms up, then sleeps `--fault slow_start=S` seconds, standing
in for torch.compile and CUDA-graph capture, and only then binds its port, as vLLM does.
`ServerSize` says how big. `debug_start` measures one start with no probes (a debug pod): the
evidence an operator has (startedAt, `kubectl logs --timestamps`) and, beside it, the truth
(when the port really opened, by connecting every 20 ms). `startup_budget_seconds` reads what
a manifest's probes allow a start. Pods run under the supervisor in `startup_runs`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import yaml

from labsupport import isolate
from labsupport.k8s import manifests
from labsupport.k8s.spec import expand, free_port
from labsupport.serving.launcher import child_env, server_command, stop_group

TIME_SCALE = 0.1  # real seconds per manifest second: the lab's cluster runs 10x fast
HANG_BOUND_SECONDS = 60.0  # manifest seconds: liveness must catch a hang within this
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


INCIDENT = ServerSize(256, 3.0)  # ~4-5 s on a 2-core CPU machine: 40-50 manifest seconds
SMALL = ServerSize(64, 1.0)  # ~2-3 s

LIVENESS_ONLY = """\
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
    args: [--port, $(PORT), --weights-mb, "256", --fault, slow_start=3]
    ports:
    - name: http
      containerPort: 8000
    readinessProbe:
      httpGet: {path: /ready, port: http}
      periodSeconds: 5
    livenessProbe:
      httpGet: {path: /health, port: http}
      initialDelaySeconds: 5
      periodSeconds: 10
      timeoutSeconds: 1
      failureThreshold: 3
"""


# ---- reading manifests -----------------------------------------------------------------------
def _container(manifest) -> dict:
    obj = manifests.load(manifest)
    pod = obj["spec"]["template"]["spec"] if obj.get("kind") == "Deployment" else obj["spec"]
    return pod["containers"][0]


def probe_fields(manifest, kind: str) -> dict | None:
    """The probe (`startupProbe`, `livenessProbe`, `readinessProbe`) with Kubernetes defaults."""
    probe = _container(manifest).get(kind)
    if probe is None:
        return None
    defaults = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1}
    return {**defaults, "failureThreshold": 3, "successThreshold": 1, **probe}


def startup_budget_seconds(manifest) -> float:
    """Manifest seconds the probes give a start: initialDelaySeconds + failureThreshold x
    periodSeconds, the rule of the Kubernetes docs (the kill itself comes with the
    failureThreshold-th failure, one period earlier).

    The startupProbe's when there is one; without one, liveness decides from the start.
    Infinite when neither probe exists.
    """
    probe = probe_fields(manifest, "startupProbe") or probe_fields(manifest, "livenessProbe")
    if probe is None:
        return float("inf")
    return float(probe["initialDelaySeconds"] + probe["failureThreshold"] * probe["periodSeconds"])


def with_startup_probe(manifest: str, probe: dict) -> str:
    """`manifest` with `probe` as the container's startupProbe (YAML in, YAML out)."""
    obj = manifests.load(manifest)
    obj = json.loads(json.dumps(obj))  # a deep copy
    _container(obj)["startupProbe"] = probe
    return yaml.safe_dump(obj, sort_keys=False)


# ---- one start, measured -------------------------------------------------------------------
def _iso(t: float) -> str:
    """RFC 3339 in UTC with microseconds, as `kubectl logs --timestamps` prints (to the us)."""
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def tcp_connects(port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass
class StartRecord:
    """One measured start: what an operator can see, and the truth measured beside it."""

    size: ServerSize
    started_at: str  # the container's start, RFC 3339 (status.containerStatuses[].startedAt)
    logs: list[str]  # `kubectl logs --timestamps`: "<RFC 3339> <line>", up to when it served
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
        lines: list[tuple[float, str]] = []
        started = time.time()
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
                lines.append((time.time(), raw.decode(errors="replace").rstrip("\n")))

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
            cut = time.time()
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
    phases = next((json.loads(s[len(STARTUP) :]) for _, s in kept if s.startswith(STARTUP)), {})
    return StartRecord(
        size, _iso(started), [f"{_iso(t)} {text}" for t, text in kept], port_open_s, phases
    )


def debug_starts(sizes: list[ServerSize]) -> list[StartRecord]:
    """One debug start per size, one after the other."""
    return [debug_start(size) for size in sizes]
