import signal
import subprocess
import sys
import time

import httpx
import psutil

from labsupport.serving import serve_cli
from labsupport.serving.launcher import child_env, serve_subprocess, server_command

from .helpers import free_port, listening_pids


def _run(*args, timeout_s=60):
    return subprocess.run(
        server_command(*args), env=child_env(), capture_output=True, text=True, timeout=timeout_s
    )


def test_parser_defaults_follow_vllm():
    args = serve_cli.build_parser().parse_args([])
    assert (args.host, args.port, args.shutdown_timeout) == ("127.0.0.1", 8000, 0.0)
    assert args.fault == [] and args.device == "auto"


def test_refuses_to_bind_beyond_loopback():
    assert serve_cli.main(["--host", "0.0.0.0"]) == 2


def test_bad_options_exit_with_a_message():
    r = _run("--fault", "nope")
    assert r.returncode == 2 and "unknown fault 'nope'" in r.stderr
    r = _run("--num-kv-blocks", "2", "--max-model-len", "1024")
    assert r.returncode == 2 and "KV cache" in r.stderr
    r = _run("--sigterm-handler", "no_such_module_xyz:fn")
    assert r.returncode == 2


def test_port_in_use_is_an_error():
    with serve_subprocess() as srv:
        r = _run("--port", str(srv.port))
    assert r.returncode == 1 and "cannot bind" in r.stderr


def test_port_zero_prints_the_url_and_ctrl_c_leaves_nothing_behind():
    with serve_subprocess("--weights-mb", "16") as srv:
        assert srv.startup["file_bytes"] > 16 * 2**20 and srv.startup["read_s"] > 0
        proc = psutil.Process(srv.pid)
        assert proc.num_threads() >= 2  # the event loop and the engine thread
        assert listening_pids(srv.port) == {srv.pid}
        assert httpx.get(srv.base_url + "/health", trust_env=False).status_code == 200
        t0 = time.monotonic()
        srv.send_signal(signal.SIGINT)
        assert srv.wait(10) == 0
        assert time.monotonic() - t0 < 5
        assert not psutil.pid_exists(srv.pid) or psutil.Process(srv.pid).status() == "zombie"
        assert not listening_pids(srv.port)
    assert "server stopped" in srv.output


def test_sigterm_while_loading_exits_promptly():
    port = free_port()
    proc = subprocess.Popen(
        server_command("--fault", "slow_start=30", port=port),
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith("slow_start:"):
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert not listening_pids(port)


def test_runs_as_a_module():
    r = subprocess.run(
        [sys.executable, "-m", "labsupport.serving.serve_cli", "--help"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "--weights-mb" in r.stdout and "--shutdown-timeout" in r.stdout
