"""Kubernetes semantics over real processes: probes, pods, a Service, rolling updates.

    >>> import sys
    >>> from labsupport import k8s
    >>> spec = k8s.PodSpec(command=[sys.executable, "-m", "labsupport.k8s.demo_server",
    ...                             "--port", "$(PORT)"], ports=[k8s.Port(8000)],
    ...                    readiness_probe=k8s.Probe(k8s.HTTPGet("/ready", 8000), period_seconds=1))
    >>> with k8s.Deployment("web", spec, replicas=2, time_scale=0.1) as web:
    ...     web.wait_ready(timeout_s=30)
    True

Kubernetes cannot run on the lab machines, so this package plays the kubelet, the Deployment
controller and kube-proxy over real processes, signals and sockets, following the documented
semantics (each module cites its page). What is not the real thing, said plainly:
- `time_scale` (default 0.1) multiplies every manifest duration into real seconds, so a lab
  plays minutes of cluster time in seconds. Processes themselves run in real time.
- One container per pod; all pods share 127.0.0.1, each containerPort mapped to a free host
  port, passed to the container as `$PORT` / `$(PORT)`.
- Endpoint changes reach the balancer after `endpoint_propagation_seconds` (a cluster's
  EndpointSlice -> kube-proxy lag), which is what a preStop sleep covers.

Modules: probes (handlers, thresholds), pod (kubelet), balancer (Service), deployment
(controller, rollouts), manifests (schema validation and translation), describe (kubectl-style
text), events (event log, Timing), demo_server (a real HTTP server to supervise).
"""

from labsupport.k8s.balancer import Balancer
from labsupport.k8s.deployment import Deployment
from labsupport.k8s.describe import get_pods
from labsupport.k8s.events import Event, EventLog, Timing
from labsupport.k8s.pod import Pod
from labsupport.k8s.probes import (
    Call,
    Exec,
    HTTPGet,
    Probe,
    ProbeResult,
    ProbeTarget,
    TCPSocket,
    run_probe,
)
from labsupport.k8s.rollout import Recreate, RollingUpdate, RolloutResult
from labsupport.k8s.spec import PodSpec, Port, Sleep, Terminated

__all__ = [
    "Balancer",
    "Call",
    "Deployment",
    "Event",
    "EventLog",
    "Exec",
    "HTTPGet",
    "Pod",
    "PodSpec",
    "Port",
    "Probe",
    "ProbeResult",
    "ProbeTarget",
    "Recreate",
    "RollingUpdate",
    "RolloutResult",
    "Sleep",
    "TCPSocket",
    "Terminated",
    "Timing",
    "get_pods",
    "run_probe",
]
