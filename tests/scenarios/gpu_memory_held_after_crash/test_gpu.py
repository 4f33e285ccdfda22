"""On a real GPU: the orphans hold device memory NVML lists; the fixes give it back."""

import pytest

from labsupport.scenarios import gpu_memory_held_after_crash as scenario
from labsupport.scenarios.gpu_memory_held_after_crash import incident

pytestmark = pytest.mark.gpu
V = scenario.variant(1)


@pytest.mark.timeout(600)
def test_an_orphaned_worker_holds_its_share_of_the_gpu_and_tini_gives_it_back():
    cmd = incident.command(V)
    broken = incident.run(V, command=cmd, timeout_s=300)
    ev = broken.evidence()
    orphan = next(r for r in ev["ps"] if r["name"] == "engine-w1")
    held = {g["pid"]: g["used_mib"] for g in ev["gpu"]}
    assert held.get(orphan["pid"], 0) >= V.gpu_worker_bytes / 2**20  # its 2 GiB and a context
    assert not any(g["pid"] == 1 for g in ev["gpu"])
    assert broken.held_after_bytes >= V.gpu_worker_bytes
    fixed = incident.run(V, command=cmd, entrypoint=["tini", "--", *incident.server_part(cmd)],
                         timeout_s=300)  # fmt: skip
    assert fixed.held_after_bytes < 64 * 2**20
