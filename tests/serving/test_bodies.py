"""Hardened request reading: nesting, size limit while reading, clients leaving mid-upload;
and a server killed while writing its checkpoint leaves no file behind."""

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

from labsupport import isolate
from labsupport.serving.bodies import MAX_BODY_BYTES
from labsupport.serving.launcher import child_env, serve_subprocess, server_command, stop_group

from .helpers import wait_until


@pytest.fixture(scope="module")
def srv():
    with serve_subprocess("--max-model-len", "256") as server:
        yield server


def _raw(srv, head: bytes, body: bytes = b"", close: bool = False) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sock.sendall(head + body)
    if close:
        sock.close()
    return sock


def _answer(sock: socket.socket) -> bytes:
    """What the server sent until it closed the connection (a reset ends it too: the server
    closes with the rest of the upload unread, on purpose)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_deep_nesting_is_a_400_on_a_connection_that_stays_open(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        deep = b"[" * 5000 + b"]" * 5000
        conn.request("POST", "/v1/completions", deep, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 400 and "nests too deeply" in body["error"]["message"]
        assert not resp.will_close
        sock = conn.sock
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200 and conn.sock is sock  # same keep-alive
    finally:
        conn.close()
    assert "Traceback" not in srv.output


def test_an_announced_oversize_body_is_refused_before_it_is_sent(srv):
    head = (
        b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (10 * MAX_BODY_BYTES)
    )
    sock = _raw(srv, head)
    try:
        answer = _answer(sock)  # no byte of the body was sent: the server did not wait
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413") and b"limit" in answer


def test_a_chunked_upload_is_cut_off_at_the_limit(srv):
    head = (
        b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
    sock = _raw(srv, head)
    answer: list[bytes] = []
    reader = threading.Thread(target=lambda: answer.append(_answer(sock)))
    reader.start()  # reading while sending: the answer comes before the upload ends
    try:
        with contextlib.suppress(OSError):  # the server hangs up on what it will not read
            for _ in range(4 * MAX_BODY_BYTES // len(chunk)):  # never ended
                sock.sendall(chunk)
        reader.join(10)
    finally:
        sock.close()
    assert answer and answer[0].startswith(b"HTTP/1.1 413"), answer


def test_a_client_leaving_mid_upload_is_a_disconnect_not_an_error(srv):
    head = (
        b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    _raw(srv, head, b'{"prompt": ', close=True)
    wait_until(lambda: "client disconnected" in srv.output, timeout_s=10, what="the log line")
    assert "Traceback" not in srv.output and " ERROR " not in srv.output
    assert httpx.get(f"{srv.base_url}/health", trust_env=False).status_code == 200


def _writing(pid: int, folder: str) -> bool:
    """Whether `pid` holds a file in `folder` open (unnamed files show as 'folder/#N')."""
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        try:
            if os.readlink(f"{fds}/{fd}").startswith(folder):
                return True
        except OSError:
            pass
    return False


@pytest.mark.parametrize("persistent", [False, True], ids=["ephemeral", "weights-path"])
def test_sigkill_while_writing_the_checkpoint_leaves_nothing(persistent):
    with isolate.temp_dir() as tmp:
        cache = tmp / "cache"
        cache.mkdir()
        extra = ["--weights-path", str(cache / "model.safetensors")] if persistent else []
        env = {**child_env(), "TMPDIR": str(tmp)}
        argv = server_command("--weights-mb", "1024", *extra)
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            folder = str(cache if persistent else tmp)
            wait_until(
                lambda: _writing(proc.pid, folder) or proc.poll() is not None,
                timeout_s=60,
                interval_s=0.01,
                what="the checkpoint being written",
            )
            assert proc.poll() is None, "the server ended before it wrote its checkpoint"
            time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            stop_group(proc)
        assert [p.name for p in tmp.rglob("*") if p != cache] == []
