import socket
import subprocess
import sys

from labsupport import isolate
from labsupport.grading import hygiene


def test_clean_test_has_no_leftovers():
    before = hygiene.snapshot()
    assert hygiene.leftovers(before, settle_s=0.2) == []


def test_child_process_left_running_is_caught_and_killed():
    before = hygiene.snapshot()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    problems = hygiene.leftovers(before, settle_s=0.2)
    assert any(f"process {proc.pid}" in p for p in problems)
    assert proc.wait(timeout=10) != 0  # it was killed


def test_listening_port_is_caught():
    before = hygiene.snapshot()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        problems = hygiene.leftovers(before, settle_s=0.2)
        assert any(f":{sock.getsockname()[1]} listening" in p for p in problems)
    finally:
        sock.close()


def test_temp_entry_is_caught_and_removed():
    before = hygiene.snapshot()
    cm = isolate.temp_dir()
    path = cm.__enter__()
    problems = hygiene.leftovers(before, settle_s=0.1)
    assert any(path.name in p for p in problems)
    assert not path.exists()
