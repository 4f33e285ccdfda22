"""labsupport.linux.mounts: a private /dev/shm of a given size, what df and ls see in it."""

import os
import subprocess
import sys

import pytest

from labsupport.linux import mounts

CHILD = r"""
import json, os
from labsupport.linux import mounts
mode = mounts.enter()
mounts.mount_tmpfs("/dev/shm", 4 << 20)
with open("/dev/shm/blob", "wb") as f:
    f.write(b"x" * (1 << 20))
with mounts.Sampler("/dev/shm", interval_s=0.001) as s:
    with open("/dev/shm/more", "wb") as f:
        f.write(b"y" * (1 << 20))
u = mounts.usage("/dev/shm")
print(json.dumps({"mode": mode, "size": u.size_bytes, "used": u.used_bytes,
                  "ls": mounts.listing("/dev/shm"), "peak": s.peak_bytes}))
"""


def _private_shm_or_skip():
    found = mounts.probe()
    if found.mode == "none":
        pytest.skip(f"no private mounts here: {found.reason}")


def test_a_child_gets_its_own_small_dev_shm_and_the_machine_keeps_its_own():
    _private_shm_or_skip()
    host_before = mounts.usage("/dev/shm").size_bytes
    import json

    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    got = json.loads(out)
    assert got["mode"] in ("root", "user namespace")
    assert got["size"] == 4 << 20
    assert got["used"] >= 2 << 20
    assert [name for name, _ in got["ls"]] == ["blob", "more"]
    assert got["peak"] >= 2 << 20
    assert mounts.usage("/dev/shm").size_bytes == host_before
    assert not os.path.exists("/dev/shm/blob")


def test_usage_and_listing_of_a_directory(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10000)
    (tmp_path / "b").write_bytes(b"")
    names = [n for n, _ in mounts.listing(str(tmp_path))]
    assert names == ["a", "b"]
    u = mounts.usage(str(tmp_path))
    assert u.free_bytes == u.size_bytes - u.used_bytes


def test_mounting_without_a_namespace_of_ones_own_is_refused_in_a_child():
    code = (
        "from labsupport.linux import mounts\n"
        "try:\n"
        "    mounts.mount_tmpfs('/nonexistent-dir-srelab', 1 << 20)\n"
        "except mounts.MountsUnavailable as e:\n"
        "    print('refused', e.errno)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    ).stdout
    assert out.startswith("refused")
