import contextlib

import httpx
import psutil
import pytest

from labsupport.serving.launcher import ServerStartError, serve_subprocess

from .helpers import listening_pids


def test_a_server_that_dies_at_start_raises_with_its_output():
    with pytest.raises(ServerStartError, match="unknown fault"):
        with serve_subprocess("--fault", "nope"):
            pass


def test_exceptions_inside_the_block_still_stop_the_server():
    with pytest.raises(RuntimeError, match="boom"):
        with serve_subprocess() as srv:
            pid, port = srv.pid, srv.port
            raise RuntimeError("boom")
    assert not psutil.pid_exists(pid) and not listening_pids(port)


def test_a_server_deaf_to_sigterm_is_killed():
    # a blocked event loop never runs the SIGTERM handler: SIGKILL after stop_timeout_s
    with serve_subprocess(stop_timeout_s=1.0) as srv:
        with contextlib.suppress(httpx.TimeoutException):  # the answer may never come
            srv.set_fault("blocked_event_loop", 30, timeout_s=5)
    assert srv.proc.returncode == -9
    assert not listening_pids(srv.port)


def test_startup_timeout():
    with pytest.raises(ServerStartError, match="not listening after"):
        with serve_subprocess("--fault", "slow_start=30", startup_timeout_s=1.0):
            pass
