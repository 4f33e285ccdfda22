"""What the kubelet makes of the job's Pod: quantities, /dev/shm's room, the memory limit."""

import pytest

from labsupport.scenarios.dataloader_bus_error import pod

MiB, GiB = 2**20, 2**30


@pytest.mark.parametrize(
    "text, want",
    [("64Mi", 64 * MiB), ("1Gi", GiB), ("1G", 10**9), ("500M", 500 * 10**6),
     ("1.5Gi", 3 * GiB // 2), ("5e8", 5 * 10**8), ("100k", 10**5), (2048, 2048), ("0.5", 1)],
)  # fmt: skip
def test_quantities_are_read_as_kubernetes_reads_them(text, want):
    assert pod.quantity_bytes(text) == want


@pytest.mark.parametrize("bad", ["64MB", "Mi", "1.2.3Gi", True, "-"])
def test_what_is_not_a_quantity_is_refused(bad):
    with pytest.raises(pod.PodError):
        pod.quantity_bytes(bad)


def _pod(volume: str, memory: str = "8Gi", mount: bool = True) -> str:
    mounts = "    volumeMounts:\n    - {name: dshm, mountPath: /dev/shm}\n" if mount else ""
    return (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
        "  - name: trainer\n    image: x\n"
        f"    resources: {{limits: {{memory: {memory}}}}}\n{mounts}"
        f"  volumes:\n  - name: dshm\n    {volume}\n"
    )


def test_without_a_volume_the_runtime_default_applies():
    got = pod.read(pod.incident_manifest(8 * GiB))
    assert got.shm_room_bytes == 64 * MiB and got.shm_volume is None
    assert got.memory_limit_bytes == 8 * GiB


def test_a_memory_emptydir_gets_the_smaller_of_its_size_and_the_memory_limits():
    assert (
        pod.read(_pod("emptyDir: {medium: Memory, sizeLimit: 256Mi}")).shm_room_bytes == 256 * MiB
    )
    small = pod.read(_pod("emptyDir: {medium: Memory, sizeLimit: 2Gi}", memory="1Gi"))
    assert small.shm_room_bytes == GiB and small.memory_backed
    unbounded = pod.read(_pod("emptyDir: {medium: Memory}", memory="3Gi"))
    assert unbounded.shm_room_bytes == 3 * GiB and unbounded.size_limit_bytes is None


def test_a_disk_emptydir_is_not_memory_backed_and_an_unknown_volume_is_an_error():
    assert not pod.read(_pod("emptyDir: {sizeLimit: 1Gi}")).memory_backed
    text = _pod("emptyDir: {medium: Memory}").replace(
        "- name: dshm\n    emptyDir", "- name: other\n    emptyDir"
    )
    with pytest.raises(pod.PodError, match="no volume has that name"):
        pod.read(text)
