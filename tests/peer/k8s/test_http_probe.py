"""Peer cases: the kubelet's HTTP probe against a real HTTP server.

Ported from kubernetes/kubernetes pkg/probe/http/http_test.go at commit
c7297a449898c64d49f388fe2f2fe98a13da4d5e, run against `labsupport.k8s.http_probe` (the
pkg/probe/http layer) with an in-process `http.server` in place of Go's httptest server.
Result names are probe.Result's: success, warning, failure. The kubelet builds its prober with
followNonLocalRedirects = false, so the "-local" column of the redirect tables is the one that
applies (the other is out of scope: docs/peer_scope.md). Times are shortened: a 3 s handler
against a 1 s timeout is a 1 s handler against 0.3 s. The code it exercises was read in the
index's copy of http.go (maxRespBodyLength, RedirectChecker, probe.Warning for a 3xx).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from labsupport.k8s.http_probe import MAX_BODY_BYTES, http_probe
from labsupport.k8s.probes import HTTPGet, ProbeTarget, run_probe

SOURCE = "http_test.go @ c7297a449898c64d49f388fe2f2fe98a13da4d5e"


class Server:
    """httptest.NewServer: 127.0.0.1 on a free port, `handler(request)` per test."""

    def __init__(self, handler):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.handler(self)

            def log_message(self, *args):
                pass

        self.handler = handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(handler) -> Server:
        servers.append(Server(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def reply(req, status: int, body: bytes = b"", headers=()):
    req.send_response(status)
    for k, v in headers:
        req.send_header(k, v)
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)


def handle_req(status, body):
    return lambda req: reply(req, status, body.encode())


def header_echo(req):
    reply(req, 200, "".join(f"{k}: {v}\n" for k, v in req.headers.items()).encode())


def host_echo(req):
    reply(req, 200, (req.headers.get("Host") or "").encode())


def drop_connection(req):  # WriteHeader(-1): Go's server panics and closes the connection
    req.close_connection = True
    req.wfile.flush()
    req.connection.shutdown(2)


def slow(req):
    time.sleep(1.0)


def redirect_handler(status, bad):
    def handle(req):
        if req.path == "/":
            reply(req, status, b"<a href=/new>moved</a>", [("Location", "/new")])
        elif bad and req.path == "/new":
            reply(req, 500, b"\n")
        else:
            reply(req, 200)

    return handle


CHECKER_CASES = [
    pytest.param(handle_req(200, "ok body"), (), "success", "ok body", None, id="00-ok"),
    pytest.param(
        header_echo, [("X-Muffins-Or-Cupcakes", "muffins")], "success",
        "X-Muffins-Or-Cupcakes: muffins", None, id="01-header",
    ),
    pytest.param(
        header_echo, [("User-Agent", "foo/1.0")], "success", "User-Agent: foo/1.0", None,
        id="02-user-agent",
    ),
    pytest.param(header_echo, [("User-Agent", "")], "success", "", "User-Agent", id="03-no-ua"),
    pytest.param(header_echo, [], "success", "User-Agent: kube-probe/", None, id="04-default-ua"),
    pytest.param(
        host_echo, [("Host", "muffins.cupcakes.org")], "success", "muffins.cupcakes.org", None,
        id="05-host",
    ),
    pytest.param(drop_connection, (), "failure", None, None, id="06-FailureCode"),
    pytest.param(handle_req(500, "fail body"), (), "failure", None, None, id="07-500"),
    pytest.param(slow, (), "failure", None, None, id="08-timeout"),
    pytest.param(redirect_handler(301, False), (), "success", "", None, id="09-301"),
    pytest.param(redirect_handler(301, True), (), "failure", None, None, id="10-301-bad"),
    pytest.param(redirect_handler(302, False), (), "success", "", None, id="11-302"),
    pytest.param(redirect_handler(302, True), (), "failure", None, None, id="12-302-bad"),
    pytest.param(redirect_handler(307, False), (), "success", "", None, id="13-307"),
    pytest.param(redirect_handler(307, True), (), "failure", None, None, id="14-307-bad"),
    pytest.param(redirect_handler(308, False), (), "success", "", None, id="15-308"),
    pytest.param(redirect_handler(308, True), (), "failure", None, None, id="16-308-bad"),
]  # fmt: skip


@pytest.mark.parametrize("handler,headers,health,acc_body,not_body", CHECKER_CASES)
def test_http_probe_checker(serve, handler, headers, health, acc_body, not_body):
    """TestHTTPProbeChecker (http_test.go @ c7297a44). Cases 10, 12, 14, 16 are the
    disagreement the issue found: a redirect to a failing path on the same host fails."""
    server = serve(handler)
    out = http_probe("127.0.0.1", server.port, "/", headers, timeout_s=0.3)
    assert out.state == health and not out.error, out
    if health != "failure":
        assert acc_body in out.message
        if not_body:
            assert not_body not in out.message


def redirect_router(req):
    path = urlsplit(req.path).path
    if path == "/redirect":
        loc = parse_qs(urlsplit(req.path).query)["loc"][0]
        reply(req, 302, b"", [("Location", loc)])
    elif path == "/loop":
        reply(req, 302, b"", [("Location", "/loop")])
    elif path == "/success":
        reply(req, 200)
    else:
        reply(req, 500, b"\n")


@pytest.mark.parametrize(
    "redirect,want",
    [
        pytest.param("/success", "success", id="local success-local"),
        pytest.param("/fail", "failure", id="local fail-local"),
        pytest.param("NEWPORT/success", "success", id="newport success-local"),
        pytest.param("NEWPORT/fail", "failure", id="newport fail-local"),
        pytest.param("http://0.0.0.0/fail", "warning", id="bogus nonlocal-local"),
        pytest.param("/loop", "failure", id="redirect loop-local"),
    ],
)
def test_http_probe_checker_non_local_redirects(serve, redirect, want):
    """TestHTTPProbeChecker_NonLocalRedirects (http_test.go @ c7297a44), the kubelet's column
    (followNonLocalRedirects = false): another port of the same host is followed, another host
    is a warning, a loop fails after 10 requests."""
    server, newport = serve(redirect_router), serve(redirect_router)
    loc = redirect.replace("NEWPORT", newport.url)
    out = http_probe("127.0.0.1", server.port, f"/redirect?loc={loc}", (), timeout_s=5)
    assert out.state == want, out


def host_checker(req):
    path = urlsplit(req.path).path
    if path == "/redirect":
        reply(req, 302, b"", [("Location", "/success")])
    elif path == "/success":
        reply(req, 200 if req.headers.get("Host") == "www.success.com" else 400)
    else:
        reply(req, 500)


@pytest.mark.parametrize(
    "host,want",
    [("www.success.com", "success"), ("www.fail.com", "failure")],
    ids=["success", "fail"],
)
def test_http_probe_checker_host_header_preserved_after_redirect(serve, host, want):
    """TestHTTPProbeChecker_HostHeaderPreservedAfterRedirect (http_test.go @ c7297a44), local."""
    server = serve(host_checker)
    out = http_probe("127.0.0.1", server.port, "/redirect", [("Host", host)], timeout_s=5)
    assert out.state == want, out


@pytest.mark.parametrize(
    "size,want_len",
    [
        pytest.param(MAX_BODY_BYTES + 1, MAX_BODY_BYTES, id="PayloadTruncated"),
        pytest.param(MAX_BODY_BYTES - 1, MAX_BODY_BYTES - 1, id="PayloadNormal"),
    ],
)
def test_http_probe_checker_payload(serve, size, want_len):
    """TestHTTPProbeChecker_PayloadTruncated / _PayloadNormal (http_test.go @ c7297a44): the
    body is cut at 10 KiB, which is not an error."""

    def handler(req):
        ok = req.headers.get("Host") == "www.success.com"
        reply(req, 200 if ok else 400, b"a" * size if ok else b"")

    server = serve(handler)
    out = http_probe("127.0.0.1", server.port, "/success", [("Host", "www.success.com")], 5)
    assert (out.state, out.error, out.message) == ("success", False, "a" * want_len)


# ---- through run_probe, as the kubelet's prober sees it -------------------------------------
def test_probe_results_as_the_prober_maps_them(serve):
    """prober.go: a warning is a success (with a ProbeWarning event), a failure message carries
    no body (issue 99425), a body that cannot be read is a prober error, thrown away."""
    server = serve(redirect_router)
    target = ProbeTarget(ports={8000: server.port})
    bogus = run_probe(HTTPGet("/redirect?loc=http://0.0.0.0/x", 8000), target, 5)
    assert bogus.ok and bogus.warning and bogus.state == "warning" and not bogus.errored
    assert bogus.message.startswith("Probe terminated redirects, Response body:")
    failed = run_probe(HTTPGet("/nope", 8000), target, 5)
    assert not failed.ok and failed.message == "HTTP probe failed with statuscode: 500"

    def stalls_in_the_body(req):
        req.send_response(200)
        req.send_header("Content-Length", "100")
        req.end_headers()
        req.wfile.write(b"partial")
        req.wfile.flush()
        time.sleep(1.0)

    stalled = serve(stalls_in_the_body)
    target = ProbeTarget(ports={8000: stalled.port})
    result = run_probe(HTTPGet("/", 8000), target, 0.3)
    assert result.errored and not result.ok and result.state == "failure"
