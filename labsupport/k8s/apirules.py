"""What the API server checks beyond the OpenAPI schema, and what the lab cannot run.

    >>> from labsupport.k8s.apirules import semantic_errors
    >>> pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
    ...     {"name": "c", "image": "i", "command": ["x"], "livenessProbe": {"periodSeconds": 5}}]}}
    >>> semantic_errors(pod, require_command=True)
    ['spec.containers[0].livenessProbe: must specify a handler type (exec, httpGet or tcpSocket)']

The first kind mirrors the API server's validation (pkg/apis/core/validation): one handler per
probe, successThreshold 1 for liveness and startup, no terminationGracePeriodSeconds on a
readiness probe, selector matching the template labels, maxSurge and maxUnavailable not both 0,
a preStop sleep within the grace period, image required. The second kind says plainly that the
supervisor cannot do it (several containers, no command, undeclared probe ports, grpc, HTTPS,
valueFrom, postStart).
"""

from __future__ import annotations

import re

PROBES = {
    "startupProbe": "startup_probe",
    "livenessProbe": "liveness_probe",
    "readinessProbe": "readiness_probe",
}
_PERCENT = re.compile(r"^[0-9]+%$")
_LAB = "(the lab supervisor runs processes, not images)"


def _int_or_percent(value, where: str, errors: list) -> None:
    if isinstance(value, str) and not _PERCENT.match(value):
        errors.append(f'{where}: a string must be a percentage such as "25%", got {value!r}')


def semantic_errors(obj: dict, require_command: bool) -> list[str]:
    errors: list[str] = []
    if not (obj.get("metadata") or {}).get("name"):
        errors.append("metadata.name: required field is missing")
    if obj["kind"] == "Deployment":
        spec = obj.get("spec") or {}
        base = "spec.template.spec"
        pod = (spec.get("template") or {}).get("spec") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        wanted = (spec.get("selector") or {}).get("matchLabels") or {}
        if not wanted or any(labels.get(k) != v for k, v in wanted.items()):
            errors.append(
                f"spec.template.metadata.labels: selector {wanted} does not match "
                f"template labels {labels}"
            )
        strategy = spec.get("strategy") or {}
        rolling = strategy.get("rollingUpdate")
        if strategy.get("type") == "Recreate" and rolling is not None:
            errors.append(
                "spec.strategy.rollingUpdate: may not be specified when strategy "
                "`type` is 'Recreate'"
            )
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            rolling = rolling or {}
            for key in ("maxSurge", "maxUnavailable"):
                _int_or_percent(
                    rolling.get(key, "25%"), f"spec.strategy.rollingUpdate.{key}", errors
                )
            if str(rolling.get("maxSurge", "25%")) in ("0", "0%") and str(
                rolling.get("maxUnavailable", "25%")
            ) in ("0", "0%"):
                errors.append(
                    "spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0"
                )
        if pod.get("restartPolicy", "Always") != "Always":
            errors.append(f"{base}.restartPolicy: a Deployment's pods must use Always")
    else:
        base, pod = "spec", obj.get("spec") or {}
    errors += _pod_errors(pod, base, require_command)
    return errors


def _pod_errors(pod: dict, base: str, require_command: bool) -> list[str]:
    errors: list[str] = []
    containers = pod.get("containers") or []
    if len(containers) != 1:
        errors.append(
            f"{base}.containers: the lab supervisor runs exactly one container per "
            f"pod, found {len(containers)}"
        )
    for key in ("initContainers", "ephemeralContainers"):
        if pod.get(key):
            errors.append(f"{base}.{key}: not supported by the lab supervisor")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace is not None and grace < 0:
        errors.append(f"{base}.terminationGracePeriodSeconds: must be >= 0")
    for i, c in enumerate(containers[:1]):
        where = f"{base}.containers[{i}]"
        if not c.get("image"):
            errors.append(f"{where}.image: required field is missing")
        if require_command and not c.get("command"):
            errors.append(f"{where}.command: required here {_LAB}: give the full argv")
        ports = c.get("ports") or []
        names = {p.get("name") for p in ports if p.get("name")}
        numbers = {p.get("containerPort") for p in ports}
        for j, p in enumerate(ports):
            if not 1 <= int(p.get("containerPort", 0)) <= 65535:
                errors.append(f"{where}.ports[{j}].containerPort: must be between 1 and 65535")
        for k, e in enumerate(c.get("env") or []):
            if "valueFrom" in e:
                errors.append(f"{where}.env[{k}].valueFrom: not supported by the lab supervisor")
        for field in PROBES:
            if c.get(field) is not None:
                errors += _probe_errors(c[field], f"{where}.{field}", field, names, numbers)
        lifecycle = c.get("lifecycle") or {}
        if lifecycle.get("postStart"):
            errors.append(f"{where}.lifecycle.postStart: not supported by the lab supervisor")
        hook = lifecycle.get("preStop")
        if hook is not None:
            kinds = [k for k in ("exec", "httpGet", "sleep", "tcpSocket") if hook.get(k)]
            if len(kinds) != 1:
                errors.append(
                    f"{where}.lifecycle.preStop: must specify exactly one handler "
                    f"(exec, httpGet or sleep), found {kinds or 'none'}"
                )
            elif kinds[0] == "tcpSocket":
                errors.append(
                    f"{where}.lifecycle.preStop.tcpSocket: deprecated and never run "
                    "by the kubelet; use sleep, exec or httpGet"
                )
            elif kinds[0] == "sleep":
                secs = hook["sleep"].get("seconds", 0)
                if secs < 0 or (grace is not None and secs > grace):
                    errors.append(
                        f"{where}.lifecycle.preStop.sleep.seconds: must be between 0 "
                        f"and terminationGracePeriodSeconds ({grace}), got {secs}"
                    )
            elif kinds[0] == "httpGet":
                errors += _port_errors(
                    hook["httpGet"], f"{where}.lifecycle.preStop.httpGet", names, numbers
                )
        gpu = "nvidia.com/gpu"
        res = c.get("resources") or {}
        if gpu in (res.get("requests") or {}) and gpu not in (res.get("limits") or {}):
            errors.append(
                f"{where}.resources.limits: Limit must be set for non overcommitable "
                f"resources ({gpu})"
            )
    return errors


def _port_errors(h: dict, where: str, names: set, numbers: set) -> list[str]:
    port, errors = h.get("port"), []
    if h.get("host") not in (None, "", "127.0.0.1", "localhost"):
        errors.append(f"{where}.host: the lab probes the pod on 127.0.0.1; remove host")
    if h.get("scheme", "HTTP") != "HTTP":
        errors.append(f"{where}.scheme: only HTTP is supported by the lab supervisor")
    if isinstance(port, str) and not port.isdigit():
        if port not in names:
            errors.append(
                f"{where}.port: no container port is named {port!r} "
                f"(named ports: {sorted(names) or 'none'})"
            )
    elif port is not None and int(port) not in numbers:
        errors.append(
            f"{where}.port: {port} is not a declared containerPort "
            f"({sorted(numbers) or 'none'}); the lab maps only declared ports"
        )
    return errors


def _probe_errors(p: dict, where: str, field: str, names: set, numbers: set) -> list[str]:
    errors = []
    kinds = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if p.get(k) is not None]
    if not kinds:
        errors.append(f"{where}: must specify a handler type (exec, httpGet or tcpSocket)")
    elif len(kinds) > 1:
        errors.append(f"{where}: may not specify more than 1 handler type, found {kinds}")
    elif kinds[0] == "grpc":
        errors.append(f"{where}.grpc: not supported by the lab supervisor; use httpGet")
    elif kinds[0] in ("httpGet", "tcpSocket"):
        errors += _port_errors(p[kinds[0]], f"{where}.{kinds[0]}", names, numbers)
    elif not (p["exec"].get("command") or []):
        errors.append(f"{where}.exec.command: required field is missing")
    for key in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        if (p.get(key) or 0) < 0:
            errors.append(f"{where}.{key}: must be greater than or equal to 0")
    if field != "readinessProbe" and p.get("successThreshold", 1) not in (0, 1):
        errors.append(f"{where}.successThreshold: must be 1 for liveness and startup probes")
    if field == "readinessProbe" and p.get("terminationGracePeriodSeconds") is not None:
        errors.append(f"{where}.terminationGracePeriodSeconds: must not be set for readinessProbes")
    return errors
