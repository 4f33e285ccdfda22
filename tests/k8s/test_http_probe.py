"""The HTTP probe's messages and requests (Kubernetes' own cases: tests/peer/k8s)."""

from __future__ import annotations

import socket
import threading

import pytest

from labsupport.k8s.http_probe import USER_AGENT, http_probe
from labsupport.k8s.spec import free_port

pytestmark = pytest.mark.timeout(30)


def _one_shot(response: bytes) -> tuple[int, list[bytes]]:
    """A server that answers one request with `response`; returns (port, [request bytes])."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    seen: list[bytes] = []

    def serve():
        conn, _ = srv.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            seen.append(data)
            conn.sendall(response)
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], seen


def test_the_request_is_the_kubelets():
    port, seen = _one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    out = http_probe("127.0.0.1", port, "/ready?x=1", [("X-Probe", "1")], timeout_s=5)
    assert (out.state, out.message, out.error) == ("success", "ok", False)
    head = seen[0].decode().split("\r\n")
    assert head[0] == "GET /ready?x=1 HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in head[1:] if line)
    assert headers["User-Agent"] == USER_AGENT and headers["Accept"] == "*/*"
    assert headers["Host"] == f"127.0.0.1:{port}" and headers["X-Probe"] == "1"
    assert headers["Connection"] == "close" and "Accept-Encoding" not in headers


def test_failures_say_what_go_says():
    port = free_port()
    refused = http_probe("127.0.0.1", port, "/", (), timeout_s=1)
    assert refused.state == "failure"
    assert refused.message == (
        f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )
    port, _ = _one_shot(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
    unavailable = http_probe("127.0.0.1", port, "/", (), timeout_s=5)
    assert unavailable.message == "HTTP probe failed with statuscode: 503", "no body (99425)"
    port, _ = _one_shot(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n")
    assert http_probe("127.0.0.1", port, "/", (), timeout_s=5).state == "warning"


def test_a_server_that_never_answers_times_out_awaiting_headers():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)  # the kernel accepts, nobody answers
    try:
        out = http_probe("127.0.0.1", srv.getsockname()[1], "/", (), timeout_s=0.3)
    finally:
        srv.close()
    assert out.state == "failure" and not out.error
    assert "Client.Timeout exceeded while awaiting headers" in out.message


def test_a_connection_closed_without_an_answer_is_eof():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def hang_up():
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        out = http_probe("127.0.0.1", srv.getsockname()[1], "/", (), timeout_s=5)
    finally:
        srv.close()
    assert out.state == "failure" and out.message.endswith('/": EOF')
