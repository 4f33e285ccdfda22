"""The stand-in card: held by the live process that mapped it, freed when it exits."""

import os
import subprocess
import sys
import time

import pytest

from labsupport.linux import mounts, procs
from labsupport.scenarios.gpu_memory_held_after_crash import card

HOLD = (
    "import sys, time\n"
    "from labsupport.scenarios.gpu_memory_held_after_crash.card import Card\n"
    "c = Card(sys.argv[1]); c.allocate(int(sys.argv[2])); print('held', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def card_dir():
    """A directory on a tmpfs, as the card is (the test's own temp dir may be on a disk)."""
    import shutil
    import tempfile

    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    d = tempfile.mkdtemp(prefix="srelab-card-", dir="/dev/shm")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_process_holds_its_share_until_it_exits_and_its_mapping_is_counted(card_dir):
    before = mounts.usage(card_dir).used_bytes
    # /dev/shm is one tmpfs: this process may map something else there (a semaphore)
    mine = card.usage_by_pid([os.getpid()], card_dir)
    child = subprocess.Popen([sys.executable, "-c", HOLD, card_dir, str(8 << 20)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "held"
        assert os.listdir(card_dir) == []  # unlinked: only the mapping keeps it
        held = card.usage_by_pid([child.pid, os.getpid()], card_dir)
        assert held == {child.pid: 8 << 20, **mine}
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5
    while mounts.usage(card_dir).used_bytes > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mounts.usage(card_dir).used_bytes <= before


def test_a_full_card_refuses_like_an_out_of_memory_error():
    if mounts.probe().mode == "none":
        pytest.skip("no private mounts here")
    code = (
        "from labsupport.linux import mounts\n"
        "from labsupport.scenarios.gpu_memory_held_after_crash.card import Card\n"
        "mounts.enter(); mounts.mount_tmpfs('/dev/shm', 4 << 20)\n"
        "c = Card('/dev/shm'); c.allocate(3 << 20)\n"
        "try:\n    c.allocate(3 << 20)\nexcept OSError as e:\n    print('refused', e.errno)\n"
        "print(c.total_bytes(), c.free_bytes())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = out.stdout.split("\n")
    assert lines[0] == "refused 28", out.stderr
    total, free = map(int, lines[1].split())
    assert total == 4 << 20 and free <= 1 << 20


def test_zombies_hold_nothing():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    procs.wait_gone([child.pid], 10)
    assert card.usage_by_pid([child.pid], "/dev/shm") == {}
    child.wait()
