"""Learner-written Pod / Deployment YAML: validated, then turned into supervisor objects.

    >>> from labsupport.k8s import manifests
    >>> text = '''
    ... apiVersion: v1
    ... kind: Pod
    ... metadata: {name: web}
    ... spec:
    ...   containers:
    ...   - name: app
    ...     image: demo:1
    ...     command: [python, -m, labsupport.k8s.demo_server, --port, $(PORT)]
    ...     ports: [{containerPort: 8000}]
    ...     livenessProbe: {tcpSocket: {port: 8000}, periodSecond: 5}
    ... '''
    >>> try:
    ...     manifests.validate(text)
    ... except manifests.ManifestError as e:
    ...     print(e.errors[0])
    spec.containers[0].livenessProbe.periodSecond: unknown field (did you mean "periodSeconds"?)

Two layers, all errors reported at once as `path: what is wrong`:
1. The real Kubernetes OpenAPI schema, strict (unknown fields rejected), from the
   `kubernetes-validate` package (offline schemas, default version 1.37).
2. What the API server checks beyond the schema (one handler per probe, successThreshold 1 for
   liveness and startup, selector matching the template labels, maxSurge and maxUnavailable
   not both 0, preStop sleep within the grace period, image required), and what this
   supervisor cannot run (several containers, no command, a probe port that is not declared,
   grpc probes, valueFrom), each said as such.
A `python`/`python3` command runs with this interpreter (sys.executable).
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

import yaml

from labsupport.k8s.apirules import PROBES, semantic_errors
from labsupport.k8s.deployment import Deployment
from labsupport.k8s.pod import Pod
from labsupport.k8s.probes import Exec, HTTPGet, Probe, TCPSocket
from labsupport.k8s.rollout import Recreate, RollingUpdate
from labsupport.k8s.spec import PodSpec, Port, Sleep

KUBERNETES_VERSION = "1.37"
SUPPORTED = {("v1", "Pod"), ("apps/v1", "Deployment")}


class ManifestError(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("manifest is not valid:\n" + "\n".join(f"  - {e}" for e in errors))


def load(source) -> dict:
    """One object from YAML text, a path, or a dict (already parsed)."""
    if isinstance(source, dict):
        return source
    if isinstance(source, Path) or (
        isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
    ):
        source = Path(source).read_text()
    try:
        docs = [d for d in yaml.safe_load_all(source) if d is not None]
    except yaml.YAMLError as e:
        raise ManifestError([f"not valid YAML: {e}"]) from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ManifestError(
            [
                f"expected exactly one YAML mapping (a Pod or a Deployment), "
                f"found {len(docs)} document(s)"
            ]
        )
    return docs[0]


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _explain(e) -> list[str]:
    """jsonschema errors rewritten as `path: what is wrong`."""
    path = list(e.absolute_path)
    if e.validator == "additionalProperties":
        known = list(e.schema.get("properties") or {})
        out = []
        for name in sorted(set(e.instance) - set(known)):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            out.append(f"{_path(path + [name])}: unknown field{hint}")
        return out or [f"{_path(path)}: {e.message}"]
    if e.validator == "required":
        missing = [r for r in e.validator_value if r not in (e.instance or {})]
        return [f"{_path(path + [m])}: required field is missing" for m in missing]
    if e.validator == "type":
        want = [
            t
            for t in (
                e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
            )
            if t != "null"
        ]
        return [f"{_path(path)}: expected {' or '.join(want)}, got {e.instance!r}"]
    if e.validator in ("oneOf", "anyOf"):
        return [f'{_path(path)}: expected an integer or a string such as "25%", got {e.instance!r}']
    if e.validator == "enum":
        allowed = [v for v in e.validator_value if v is not None]
        return [f"{_path(path)}: must be one of {allowed}, got {e.instance!r}"]
    return [f"{_path(path)}: {e.message}"]


def schema_errors(obj: dict, kubernetes_version: str = KUBERNETES_VERSION) -> list[str]:
    """Errors against the strict OpenAPI schema of that Kubernetes version ([] if valid)."""
    import kubernetes_validate
    from kubernetes_validate import utils

    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
        return []
    except kubernetes_validate.ValidationError as e:
        first = e
    except utils.SchemaNotFoundError as e:
        return [f"apiVersion/kind: {e.message}"]
    try:  # the package stops at the first error; list them all with the same schemas
        import jsonschema
        from referencing import Registry, Resource

        version = [
            v
            for v in utils.all_versions()  # the package's own choice of version
            if utils.major_minor(v) <= utils.major_minor(kubernetes_version)
        ][-1]
        folder = f"kubernetes-json-schema/v{version}-local-strict"
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
        schema = utils.schema_contents(f"{folder}/{obj['kind'].lower()}-{api}.json", version)
        defs = utils.schema_contents(f"{folder}/_definitions.json", version)
        registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        errors = sorted(validator.iter_errors(obj), key=lambda x: list(map(str, x.path)))
    except Exception:
        errors = [first]
    out: list[str] = []
    for err in errors or [first]:
        out += [m for m in _explain(err) if m not in out]
    return out


def validate(
    source, kubernetes_version: str = KUBERNETES_VERSION, require_command: bool = True
) -> dict:
    """The manifest as a dict, or ManifestError listing every problem."""
    obj = load(source)
    errors = []
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str):
            errors.append(f"{key}: required field is missing")
    if errors:
        raise ManifestError(errors)
    errors = schema_errors(obj, kubernetes_version)
    if errors:
        raise ManifestError(errors)
    if (obj["apiVersion"], obj["kind"]) not in SUPPORTED:
        raise ManifestError(
            [
                f"kind: {obj['apiVersion']} {obj['kind']} is valid Kubernetes but "
                "the lab supervisor runs only v1 Pod and apps/v1 Deployment"
            ]
        )
    errors = semantic_errors(obj, require_command)
    if errors:
        raise ManifestError(errors)
    return obj


# ---- translation ---------------------------------------------------------------------------
def _port(value):
    return int(value) if isinstance(value, int) or str(value).isdigit() else value


def _handler(h: dict):
    if h.get("exec"):
        return Exec(tuple(h["exec"]["command"]))
    if h.get("httpGet"):
        g = h["httpGet"]
        headers = tuple((x["name"], x["value"]) for x in g.get("httpHeaders") or [])
        return HTTPGet(g.get("path", "/"), _port(g.get("port")), http_headers=headers)
    if h.get("tcpSocket"):
        return TCPSocket(_port(h["tcpSocket"].get("port")))
    return Sleep(h["sleep"]["seconds"])


def _probe(p: dict) -> Probe:
    return Probe(
        _handler(p),
        initial_delay_seconds=p.get("initialDelaySeconds") or 0,
        period_seconds=p.get("periodSeconds") or 10,
        timeout_seconds=p.get("timeoutSeconds") or 1,
        success_threshold=p.get("successThreshold") or 1,
        failure_threshold=p.get("failureThreshold") or 3,
        termination_grace_period_seconds=p.get("terminationGracePeriodSeconds"),
    )


def pod_spec(source, **overrides) -> PodSpec:
    """The validated manifest's pod as a PodSpec; keyword overrides replace fields
    (e.g. `command=[...]` to run the lab's workload under the learner's probes)."""
    obj = validate(source, require_command="command" not in overrides)
    pod = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
    c = pod["containers"][0]
    command = [*(c.get("command") or []), *(c.get("args") or [])]
    if command and command[0] in ("python", "python3"):
        command[0] = sys.executable
    lifecycle = c.get("lifecycle") or {}
    limits = (c.get("resources") or {}).get("limits") or {}
    fields = dict(
        command=tuple(command),
        name=c["name"],
        env=tuple((e["name"], str(e.get("value", ""))) for e in c.get("env") or []),
        ports=tuple(Port(p["containerPort"], p.get("name", "")) for p in c.get("ports") or []),
        pre_stop=_handler(lifecycle["preStop"]) if lifecycle.get("preStop") else None,
        termination_grace_period_seconds=pod.get("terminationGracePeriodSeconds", 30),
        restart_policy=pod.get("restartPolicy", "Always"),
        gpus=int(limits.get("nvidia.com/gpu", 0)),
        cwd=c.get("workingDir"),
        **{attr: _probe(c[field]) for field, attr in PROBES.items() if c.get(field)},
    )
    return PodSpec(**{**fields, **overrides})


def deployment_kwargs(source) -> dict:
    """Deployment(...) keyword arguments from a validated Deployment manifest."""
    obj = validate(source, require_command=False)
    if obj["kind"] != "Deployment":
        raise ManifestError([f"kind: expected a Deployment, got {obj['kind']}"])
    spec = obj["spec"]
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        strat = Recreate()
    else:
        r = strategy.get("rollingUpdate") or {}
        strat = RollingUpdate(r.get("maxSurge", "25%"), r.get("maxUnavailable", "25%"))
    return {
        "name": obj["metadata"]["name"],
        "replicas": spec.get("replicas", 1),
        "strategy": strat,
        "min_ready_seconds": spec.get("minReadySeconds", 0),
        "progress_deadline_seconds": spec.get("progressDeadlineSeconds", 600),
    }


def deployment_from_manifest(source, *, overrides: dict | None = None, **kwargs) -> Deployment:
    """A (not yet started) Deployment; kwargs go to Deployment (time_scale, node_gpus ...)."""
    template = pod_spec(source, **(overrides or {}))
    return Deployment(template=template, **{**deployment_kwargs(source), **kwargs})


def pod_from_manifest(source, *, overrides: dict | None = None, **kwargs) -> Pod:
    """A (not yet started) Pod from a Pod manifest; kwargs go to Pod (timing, on_event ...)."""
    obj = validate(source, require_command=not (overrides or {}).get("command"))
    return Pod(obj["metadata"]["name"], pod_spec(obj, **(overrides or {})), **kwargs)
