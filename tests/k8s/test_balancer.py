"""The L4 balancer: round robin over its endpoints, streaming, disconnects, shutdown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from labsupport.k8s.balancer import Balancer
from labsupport.k8s.spec import free_port

pytestmark = pytest.mark.timeout(60)


def _server(name: str):
    port = free_port()
    env = {**os.environ, "POD_NAME": name}
    cmd = [sys.executable, "-m", "labsupport.k8s.demo_server", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in proc.stdout:
        if "listening" in line:
            break
    return proc, (name, "127.0.0.1", port)


@pytest.fixture(scope="module")
def servers():
    started = [_server("web-a"), _server("web-b")]
    yield [backend for _, backend in started]
    for proc, _ in started:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def _stats(backend) -> dict:
    return json.loads(httpx.get(f"http://127.0.0.1:{backend[2]}/stats", timeout=5).text)


def test_round_robin_over_current_endpoints_only(servers):
    with Balancer() as lb:
        lb.set_backends(servers)
        names = [httpx.get(lb.url + "/", timeout=5).text.split()[2] for _ in range(10)]
        assert sorted(set(names)) == ["web-a", "web-b"] and names.count("web-a") == 5
        lb.set_backends(servers[1:])
        names = [httpx.get(lb.url + "/", timeout=5).text.split()[2] for _ in range(6)]
        assert names == ["web-b"] * 6
        assert lb.connections["web-b"] == 11


def test_no_endpoints_resets_the_connection(servers):
    with Balancer() as lb:
        with pytest.raises(httpx.TransportError):
            httpx.get(lb.url + "/", timeout=5)
        assert lb.no_endpoint == 1


def test_connection_log_names_the_pod_of_each_client_port(servers):
    with Balancer() as lb:
        lb.set_backends(servers)
        seen = {}
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b"".join(iter(lambda: s.recv(4096), b"")).decode()
                seen[s.getsockname()[1]] = answer.split("hello from ")[1].split()[0]
        lb.set_backends([])
        with pytest.raises(httpx.TransportError):
            httpx.get(lb.url + "/", timeout=5)
        log = list(lb.connection_log)
        assert {c.client[1]: c.backend for c in log if c.outcome == "proxied"} == seen
        assert log[-1].backend is None and log[-1].outcome == "no_endpoint"
        assert all(c.opened_at <= time.time() for c in log)


def test_streams_are_not_buffered(servers):
    with Balancer() as lb:
        lb.set_backends(servers[:1])
        t0 = time.monotonic()
        with httpx.stream("GET", lb.url + "/stream?n=5&interval_ms=200", timeout=10) as r:
            chunks = r.iter_text()
            first = next(chunks)
            first_s = time.monotonic() - t0
            body = first + "".join(chunks)
        total_s = time.monotonic() - t0
        assert "[DONE]" in body
        assert first_s < 0.3 * total_s, f"first chunk after {first_s:.3f}s of {total_s:.3f}s"


def test_client_disconnect_reaches_the_server(servers):
    backend = servers[0]
    before = _stats(backend)["disconnected"]
    with Balancer() as lb:
        lb.set_backends([backend])
        sock = socket.create_connection(("127.0.0.1", lb.port))
        sock.sendall(b"GET /stream?n=200&interval_ms=20 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        received = b""
        while b"data: 0" not in received:  # headers and chunks may come in separate segments
            chunk = sock.recv(4096)
            assert chunk, f"the stream ended early: {received!r}"
            received += chunk
        sock.close()  # the client goes away mid-stream
        deadline = time.monotonic() + 3
        while _stats(backend)["disconnected"] == before and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = _stats(backend)
        assert stats["disconnected"] == before + 1, "the server never learned of the disconnect"
        assert stats["in_flight"] == 1  # only this /stats request


def test_open_connections_survive_endpoint_removal(servers):
    with Balancer() as lb:
        lb.set_backends(servers[:1])
        with httpx.stream("GET", lb.url + "/stream?n=6&interval_ms=50", timeout=10) as r:
            chunks = r.iter_text()
            body = next(chunks)
            lb.set_backends([])  # as kube-proxy: conntrack keeps established flows
            body += "".join(chunks)
        assert "[DONE]" in body


def test_close_stops_listening_and_resets_open_streams(servers):
    lb = Balancer().start()
    lb.set_backends(servers[:1])
    port = lb.port
    with httpx.stream("GET", lb.url + "/stream?n=100&interval_ms=20", timeout=10) as r:
        chunks = r.iter_text()
        next(chunks)
        lb.close()
        with pytest.raises(httpx.HTTPError):
            "".join(chunks)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    lb.close()  # twice is fine


def test_balancer_binds_loopback_only():
    with pytest.raises(ValueError):
        Balancer(host="0.0.0.0")
