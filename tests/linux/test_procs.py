"""labsupport.linux.procs: the process table as /proc shows it."""

import os
import socket
import subprocess
import sys
import time

from labsupport.linux import procs


def test_a_process_its_parent_group_and_namespace_pid():
    me = procs.read(os.getpid())
    assert me.ppid == os.getppid() and me.pgid == os.getpgid(0) and me.sid == os.getsid(0)
    assert me.nspid[-1] == os.getpid() or len(me.nspid) > 1
    assert "python" in me.cmdline and me.rss_bytes > 0 and not me.zombie


def test_a_child_that_exited_unreaped_is_a_zombie_without_arguments():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = procs.wait_gone([child.pid], 10.0)
    assert gone[child.pid] is not None
    p = procs.read(child.pid)
    assert p is not None and p.zombie and p.cmdline == "" and p.rss_bytes == 0
    child.wait()
    assert procs.read(child.pid) is None


def test_set_name_is_what_ps_shows_as_comm():
    code = "from labsupport.linux import procs; procs.set_name('engine-w7-long-name'); input()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while procs.read(child.pid).name != "engine-w7-long-" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert procs.read(child.pid).name == "engine-w7-long-"  # comm keeps 15 bytes
    finally:
        child.communicate("\n", timeout=10)


def test_listening_ports_belong_to_the_process_that_holds_the_socket():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        assert s.getsockname()[1] in procs.listening(os.getpid())
    finally:
        s.close()


def test_mapped_bytes_counts_shared_mappings_on_one_file_system(tmp_path):
    import mmap

    path = tmp_path / "blob"
    path.write_bytes(b"\0" * (3 * 4096))
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 3 * 4096, flags=mmap.MAP_SHARED)
        try:
            held = procs.mapped_bytes(os.getpid(), os.stat(path).st_dev)
            assert held >= 3 * 4096
        finally:
            m.close()
