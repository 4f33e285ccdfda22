"""labsupport.linux.pidns: a command as PID 1 of its own namespaces, and what that means."""

import os
import signal
import time

import pytest

from labsupport.linux import pidns, procs

ORPHAN = (
    "import subprocess, sys, time\n"
    "p = subprocess.Popen([sys.executable, '-c', "
    '\'import subprocess, time; subprocess.Popen(["sleep", "60"]); time.sleep(60)\'])\n'
    "time.sleep(0.5); p.kill(); p.wait(); print('parent gone', flush=True); time.sleep(60)\n"
)


@pytest.fixture(autouse=True)
def _needs_namespaces():
    ok, why = pidns.available()
    if not ok:
        pytest.skip(f"no PID namespaces here: {why}")


def _wait(pred, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not pred():
        time.sleep(0.02)
    return pred()


def test_the_command_is_pid_1_and_sees_only_its_container(tmp_path):
    log = tmp_path / "log"
    code = (
        "import os; print(os.getpid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
    )
    with pidns.Container(["python3", "-c", code], log_path=str(log)) as c:
        assert c.wait(10) == 0
    assert log.read_text().strip() == "1 [1]"


def test_orphans_are_adopted_by_pid_1_and_die_with_it():
    with pidns.Container(["python3", "-c", ORPHAN]) as c:
        assert _wait(
            lambda: len(c.members()) == 2 and all(procs.ns_pid(p) != 2 for p in c.members())
        )
        orphan = [p for p in c.members() if procs.ns_pid(p) != 1][0]
        assert orphan.ppid == c.init_pid  # re-parented to the container's init
        host_pid = orphan.pid
    assert procs.read(host_pid) is None  # PID 1 went, and everything in its namespace


def test_pid_1_ignores_sigterm_without_a_handler_and_has_its_own_network_and_tmpfs():
    code = (
        "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 8000)); s.listen()\n"
        "time.sleep(60)"
    )
    with pidns.Container(["python3", "-c", code], tmpfs={"/run/card": 1 << 20}) as c:
        assert _wait(lambda: procs.listening(c.init_pid) == [8000])
        assert (
            os.statvfs(c.root("/run/card")).f_blocks * os.statvfs(c.root("/run/card")).f_frsize
            == 1 << 20
        )
        c.signal(signal.SIGTERM)
        assert c.wait(0.5) is None  # still running
    assert c.exit_status is not None


def test_a_command_that_cannot_start_says_why(tmp_path):
    log = tmp_path / "log"
    with pidns.Container(["/nonexistent/program"], log_path=str(log)) as c:
        assert c.wait(10) is not None
    assert "cannot start" in log.read_text()
