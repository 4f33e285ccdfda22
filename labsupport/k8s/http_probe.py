"""The kubelet's HTTP GET probe (pkg/probe/http/http.go and request.go), over `http.client`.

    >>> from labsupport.k8s.http_probe import http_probe
    >>> from labsupport.k8s.spec import free_port
    >>> http_probe("127.0.0.1", free_port(), "/health", (), timeout_s=0.5).state
    'failure'

What it does, as the kubelet (followNonLocalRedirects = false, the kubelet's setting):
- one GET with `User-Agent: kube-probe/<version>` and `Accept: */*` unless the probe sets them
  (an empty User-Agent is not sent, an empty Accept is removed), the probe's headers, a
  `Host` header when the probe sets one, `Connection: close`, no Accept-Encoding;
- redirects (301, 302, 303, 307, 308 with a Location, the ones Go's http.Client follows) are
  followed while the new URL has the same hostname (another port counts as local), at most
  10 requests in all ("stopped after 10 redirects" is a failure); a redirect to another host
  is not followed and its 3xx is a *warning* (success, with a ProbeWarning event). A custom
  Host header survives a relative redirect, as in Go;
- 200 <= status < 400 is a success (output: the body), a 3xx a warning, anything else a failure
  with "HTTP probe failed with statuscode: N" (never the body: issue 99425); any error before
  the response (refused, timeout awaiting headers, reset) is a failure;
- the body is read up to 10 KiB (longer bodies are cut, not an error); an error *while reading
  the body* (a timeout, a reset) is a prober error, which the kubelet throws away;
- `timeout_s` covers everything, redirects and body included (Go's Client.Timeout).
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

USER_AGENT = "kube-probe/1.37"
MAX_BODY_BYTES = 10 * 1024  # maxRespBodyLength
REDIRECT_CODES = (301, 302, 303, 307, 308)
MAX_REQUESTS = 10


@dataclass(frozen=True)
class HTTPOutcome:
    state: str  # success | warning | failure (probe.Result)
    message: str  # the kubelet's output: the body, or what went wrong
    error: bool = False  # a prober error: the kubelet throws the result away


class _ClientError(Exception):
    """What Go's client.Do returns as an error: the probe fails with its text."""


def _headers(probe_headers) -> tuple[list[tuple[str, str]], str | None]:
    """newProbeRequest: the request headers and the custom Host (None when not set)."""
    pairs = [(str(k), str(v)) for k, v in probe_headers]
    names = {k.lower() for k, _ in pairs}
    host = next((v for k, v in pairs if k.lower() == "host"), None)
    out = [(k, v) for k, v in pairs if k.lower() != "host"]
    out = [(k, v) for k, v in out if not (k.lower() in ("user-agent", "accept") and v == "")]
    if "user-agent" not in names:
        out.insert(0, ("User-Agent", USER_AGENT))
    if "accept" not in names:
        out.append(("Accept", "*/*"))
    return out, host


def _left(deadline: float, url: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        msg = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        raise _ClientError(f'Get "{url}": {msg}')
    return left


def _request(url: str, headers, host_header: str | None, deadline: float):
    """One GET; returns (connection, response) with headers read, or raises _ClientError."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise _ClientError(f'Get "{url}": unsupported protocol scheme "{parts.scheme}"')
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPConnection(parts.hostname, port, timeout=_left(deadline, url))
    try:
        conn.connect()
    except ConnectionRefusedError:
        conn.close()
        dial = f"dial tcp {parts.hostname}:{port}"
        raise _ClientError(f'Get "{url}": {dial}: connect: connection refused') from None
    except (TimeoutError, OSError) as e:
        conn.close()
        why = "i/o timeout" if isinstance(e, TimeoutError) else str(e)
        raise _ClientError(f'Get "{url}": dial tcp {parts.hostname}:{port}: {why}') from None
    try:
        conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host_header or parts.netloc)
        for k, v in headers:
            conn.putheader(k, v)
        conn.putheader("Connection", "close")
        conn.endheaders()
        conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
        return conn, conn.getresponse()
    except TimeoutError:
        conn.close()
        msg = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        raise _ClientError(f'Get "{url}": {msg}') from None
    except http.client.RemoteDisconnected:  # closed without an answer
        conn.close()
        raise _ClientError(f'Get "{url}": EOF') from None
    except ConnectionResetError:
        conn.close()
        raise _ClientError(f'Get "{url}": read: connection reset by peer') from None
    except (http.client.HTTPException, OSError):
        conn.close()
        raise _ClientError(f'Get "{url}": EOF') from None


def _read_body(conn, resp, deadline: float) -> bytes:
    """utilio.ReadAtMost(body, 10 KiB): a longer body is cut; an error raises."""
    try:
        if conn.sock is not None:
            conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
        return resp.read(MAX_BODY_BYTES)
    finally:
        conn.close()


def http_probe(host: str, port: int, path: str, probe_headers, timeout_s: float) -> HTTPOutcome:
    """DoHTTPProbe with the kubelet's client: never raises."""
    deadline = time.monotonic() + timeout_s
    headers, custom_host = _headers(probe_headers)
    first = url = f"http://{host}:{port}{path}"
    host_header = custom_host
    for requests in range(1, MAX_REQUESTS + 1):
        try:
            conn, resp = _request(url, headers, host_header, deadline)
        except _ClientError as e:  # "Convert errors into failures to catch timeouts."
            return HTTPOutcome("failure", str(e))
        location = resp.getheader("Location")
        if resp.status in REDIRECT_CODES and location:
            nxt = urljoin(url, location)
            if urlsplit(nxt).hostname != urlsplit(first).hostname:
                break  # RedirectChecker: http.ErrUseLastResponse, this 3xx is the answer
            conn.close()
            if requests == MAX_REQUESTS:
                return HTTPOutcome("failure", f'Get "{nxt}": stopped after 10 redirects')
            # Go's client keeps a custom Host only over a relative Location (issue 22233)
            host_header = custom_host if not urlsplit(location).scheme else None
            url = nxt
            continue
        break
    try:
        body = _read_body(conn, resp, deadline)
    except (TimeoutError, OSError, http.client.HTTPException) as e:
        why = "context deadline exceeded" if isinstance(e, TimeoutError) else str(e) or "EOF"
        return HTTPOutcome("failure", f"reading the body of {url}: {why}", error=True)
    return _outcome(resp.status, body)


def _outcome(status: int, body: bytes) -> HTTPOutcome:
    text = body.decode(errors="replace")
    if 200 <= status < 400:
        if status >= 300:
            return HTTPOutcome("warning", f"Probe terminated redirects, Response body: {text}")
        return HTTPOutcome("success", text)
    return HTTPOutcome("failure", f"HTTP probe failed with statuscode: {status}")
