"""The training job's Pod, and what the kubelet makes of its /dev/shm and its memory limit.

    >>> from labsupport.scenarios.dataloader_bus_error import pod
    >>> pod.quantity_bytes("256Mi"), pod.quantity_bytes("1G"), pod.quantity_bytes("1.5Gi")
    (268435456, 1000000000, 1610612736)
    >>> p = pod.read(pod.incident_manifest(8 * 2**30))
    >>> p.shm_room_bytes == pod.RUNTIME_DEFAULT_SHM_BYTES, p.memory_limit_bytes // 2**30
    (True, 8)

Without a volume on /dev/shm a container gets the runtime's default, 64 MiB (Docker's and
containerd's). A volume mounted on /dev/shm replaces it: an `emptyDir` with `medium: Memory`
is a tmpfs whose usable size is the smaller of its `sizeLimit` and the sum of the pod's
containers' memory limits (Kubernetes API reference, EmptyDirVolumeSource.sizeLimit), and
every byte written to it is charged to the container's memory cgroup, so it counts against
the memory limit. `read` parses a manifest into those numbers (`PodShm`); quantities are
parsed as Kubernetes does (`quantity_bytes`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

RUNTIME_DEFAULT_SHM_BYTES = 64 * 2**20
SHM_PATH = "/dev/shm"
_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "P": 1e15, "E": 1e18,
}  # fmt: skip
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE]([+-]?\d+))?$"
)


class PodError(ValueError):
    """The manifest does not say what the kubelet needs (a quantity it cannot read ...)."""


def quantity_bytes(value) -> int:
    """A Kubernetes quantity ("256Mi", "1G", "1.5Gi", "5e8", 1024) as bytes, rounded up."""
    if isinstance(value, bool):
        raise PodError(f"{value!r} is not a quantity")
    if isinstance(value, (int, float)):
        return int(-(-value // 1))
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise PodError(f"{value!r} is not a Kubernetes quantity (e.g. 512Mi, 1Gi, 2G)")
    number, suffix, exponent = m.groups()
    scale = 10 ** int(exponent) if exponent is not None else _SUFFIX[suffix or ""]
    amount = float(number) * scale
    return int(-(-amount // 1))


@dataclass(frozen=True)
class PodShm:
    """What the kubelet gives this pod: its /dev/shm and the trainer's memory limit."""

    shm_volume: dict | None  # the volume mounted on /dev/shm, None: the runtime's default
    shm_room_bytes: int  # the usable size of /dev/shm
    memory_limit_bytes: int | None  # the first container's limit (None: none set)
    size_limit_bytes: int | None  # the emptyDir's sizeLimit, if any

    @property
    def memory_backed(self) -> bool:
        return bool(
            self.shm_volume and (self.shm_volume.get("emptyDir") or {}).get("medium") == "Memory"
        )


def _pod_spec(obj: dict) -> dict:
    if obj.get("kind") in ("Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    return obj["spec"]


def read(manifest, node_memory_bytes: int = 2**40) -> PodShm:
    """The pod's /dev/shm as the kubelet sets it up (a node of `node_memory_bytes`)."""
    obj = yaml.safe_load(manifest) if isinstance(manifest, str) else manifest
    spec = _pod_spec(obj)
    containers = spec.get("containers") or []
    limits = []
    for c in containers:
        mem = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        limits.append(None if mem is None else quantity_bytes(mem))
    first = containers[0] if containers else {}
    mount = next(
        (
            m
            for m in first.get("volumeMounts") or []
            if m.get("mountPath", "").rstrip("/") == SHM_PATH
        ),
        None,
    )
    if mount is None:
        return PodShm(None, RUNTIME_DEFAULT_SHM_BYTES, limits[0] if limits else None, None)
    volume = next(
        (v for v in spec.get("volumes") or [] if v.get("name") == mount.get("name")), None
    )
    if volume is None:
        raise PodError(f"volumeMounts names {mount.get('name')!r}, but no volume has that name")
    empty = volume.get("emptyDir")
    size_limit = None
    if empty is not None and empty.get("sizeLimit") is not None:
        size_limit = quantity_bytes(empty["sizeLimit"])
    if empty is None or empty.get("medium") != "Memory":
        room = node_memory_bytes  # a directory on the node's disk: no tmpfs, no memory charge
    else:
        room = size_limit if size_limit is not None else node_memory_bytes
        if limits and all(x is not None for x in limits):
            room = min(room, sum(limits))
    return PodShm(volume, room, limits[0] if limits else None, size_limit)


def incident_manifest(memory_limit_bytes: int) -> str:
    """The job's Pod as it ran in production: no volume on /dev/shm."""
    gib = memory_limit_bytes / 2**30
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: finetune-vlm
  labels: {{app: finetune-vlm}}
spec:
  restartPolicy: OnFailure
  containers:
  - name: trainer
    image: registry.example.com/finetune-vlm:2026.11
    command: [python, train.py, --config, configs/vlm.yaml]
    resources:
      requests: {{cpu: "16", memory: {gib:g}Gi, nvidia.com/gpu: 1}}
      limits: {{memory: {gib:g}Gi, nvidia.com/gpu: 1}}
"""
