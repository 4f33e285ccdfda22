"""What a pod is made of: the container spec, its ports, the preStop sleep, a termination record.

    >>> from labsupport.k8s.spec import PodSpec, Port, expand
    >>> spec = PodSpec(command=["server", "--port", "$(PORT)"], ports=[Port(8000, "http")])
    >>> spec.with_env(VERSION="2").env
    (('VERSION', '2'),)
    >>> expand("--port=$(PORT) $$(PORT) $(NOPE)", {"PORT": "9000"})
    '--port=9000 $(PORT) $(NOPE)'

Field names follow the Kubernetes API (snake_case); durations are manifest seconds, scaled
into real seconds by `Timing.time_scale`. One container per pod.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, replace

from labsupport.k8s.probes import Exec, HTTPGet, Probe


@dataclass(frozen=True)
class Port:
    container_port: int
    name: str = ""


@dataclass(frozen=True)
class Sleep:
    """The native preStop sleep action (KEP-3960, GA in Kubernetes 1.34)."""

    seconds: float

    def describe(self) -> str:
        return f"sleep {self.seconds:g}s"


@dataclass(frozen=True)
class PodSpec:
    """A pod with one container. `command` is the full argv (there is no image entrypoint)."""

    command: tuple[str, ...]
    name: str = "app"
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[Port, ...] = ()
    startup_probe: Probe | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    pre_stop: Exec | Sleep | HTTPGet | None = None
    termination_grace_period_seconds: float = 30
    restart_policy: str = "Always"  # Always | OnFailure | Never
    gpus: int = 0  # resources.limits["nvidia.com/gpu"]; only the scheduler reads it
    cwd: str | None = None

    def __post_init__(self):
        env = self.env.items() if isinstance(self.env, dict) else self.env
        object.__setattr__(self, "command", tuple(str(a) for a in self.command))
        object.__setattr__(self, "env", tuple((str(k), str(v)) for k, v in env))
        ports = tuple(p if isinstance(p, Port) else Port(int(p)) for p in self.ports)
        object.__setattr__(self, "ports", ports)
        if self.restart_policy not in ("Always", "OnFailure", "Never"):
            raise ValueError(f"restartPolicy {self.restart_policy!r}")
        if not self.command:
            raise ValueError("command is empty: give the container's full argv")

    def replace(self, **changes) -> PodSpec:
        return replace(self, **changes)

    def with_env(self, **env: str) -> PodSpec:
        kept = [(k, v) for k, v in self.env if k not in env]
        return replace(self, env=(*kept, *env.items()))


@dataclass
class Terminated:
    """A container's last termination, as `kubectl describe` shows under Last State."""

    exit_code: int
    reason: str  # Completed | Error | StartError
    started_at: float
    finished_at: float
    message: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expand(arg: str, env: dict) -> str:
    """Kubernetes `$(VAR)` expansion: defined variables expand, `$$(VAR)` escapes."""

    def sub(m: re.Match) -> str:
        if m.group(1).startswith("$"):  # $$(VAR) -> $(VAR), never expanded
            return "$" + m.group(1)[1:]
        return env.get(m.group(2), m.group(0))

    return re.sub(r"\$(\$\([A-Za-z_][A-Za-z0-9_]*\)|\(([A-Za-z_][A-Za-z0-9_]*)\))", sub, arg)
