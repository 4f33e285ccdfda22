"""A small real HTTP server to put under the supervisor: slow start, streams, SIGTERM modes.

    $ python -m labsupport.k8s.demo_server --port 8000 --start-delay-s 2 --on-sigterm drain
    listening on http://127.0.0.1:8000

Stdlib only (starts in ~50 ms), one thread per connection, every response `Connection: close`.
- `/health` 200 (hangs forever after the `hang` fault), `/ready` 200 or 503 (fault `unready`,
  or draining), `/` says which pod and VERSION answered, `/stats` JSON counters,
  `/status/CODE` answers with that status code.
- `/stream?n=10&interval_ms=50`: a chunked stream of `data: i` lines ending `data: [DONE]`;
  a client that goes away is counted in `disconnected`.
- `POST /admin/fault/NAME`: `hang` (health hangs), `unready`, `ready`, `crash` (exit 1),
  `stop` (SIGSTOP itself: the port still accepts TCP, nothing answers).
- `--start-delay-s`: sleep before binding the port (a model loading its weights).
- `--on-sigterm abort` (Python's default: die at once, cutting streams, exit 143), `drain`
  (stop accepting, finish in-flight requests within `--drain-timeout-s`, exit 0), `ignore`.
- `--crash-after-s`: exit 1 after that long (a crash loop).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

STATE = {"completed": 0, "disconnected": 0, "in_flight": 0, "requests": 0}
FAULTS: set[str] = set()
DRAINING = threading.Event()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one line per request on stdout, like an access log
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True)

    def _send(self, status: int, body: str, ctype: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        with LOCK:
            STATE["requests"] += 1
            STATE["in_flight"] += 1  # drain waits for every request, not only streams
        try:
            self._get()
        finally:
            with LOCK:
                STATE["in_flight"] -= 1

    def _get(self):
        url = urlparse(self.path)
        if url.path == "/health":
            while "hang" in FAULTS:
                time.sleep(0.05)
            return self._send(200, "ok")
        if url.path == "/ready":
            if "unready" in FAULTS or DRAINING.is_set():
                return self._send(503, "not ready")
            return self._send(200, "ready")
        if url.path == "/stats":
            with LOCK:
                body = json.dumps({**STATE, "pid": os.getpid(), "faults": sorted(FAULTS)})
            return self._send(200, body, "application/json")
        if url.path == "/stream":
            return self._stream(parse_qs(url.query))
        if url.path.startswith("/status/"):
            return self._send(int(url.path.rsplit("/", 1)[1]), "as asked")
        if url.path == "/":
            pod, version = os.environ.get("POD_NAME", "?"), os.environ.get("VERSION", "1")
            return self._send(200, f"hello from {pod} version {version}\n")
        return self._send(404, "not found")

    def do_POST(self):  # noqa: N802
        url = urlparse(self.path)
        if url.path.startswith("/admin/fault/"):
            name = url.path.rsplit("/", 1)[1]
            self._send(200, f"fault {name}")
            if name == "crash":
                os._exit(1)
            if name == "stop":
                os.kill(os.getpid(), signal.SIGSTOP)
            elif name == "ready":
                FAULTS.discard("unready")
            else:
                FAULTS.add(name)
            return None
        return self._send(404, "not found")

    def _stream(self, query: dict) -> None:
        n = int(query.get("n", ["10"])[0])
        interval_s = float(query.get("interval_ms", ["50"])[0]) / 1000
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(n):
                self._chunk(f"data: {i}\n\n")
                time.sleep(interval_s)
            self._chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            with LOCK:
                STATE["completed"] += 1
        except (BrokenPipeError, ConnectionResetError):
            with LOCK:
                STATE["disconnected"] += 1
        finally:
            self.close_connection = True

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--start-delay-s", type=float, default=0.0)
    ap.add_argument("--on-sigterm", choices=["abort", "drain", "ignore"], default="abort")
    ap.add_argument("--drain-timeout-s", type=float, default=30.0)
    ap.add_argument("--crash-after-s", type=float, default=None)
    args = ap.parse_args(argv)

    if args.on_sigterm == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"loading (start delay {args.start_delay_s:g}s)", flush=True)
    time.sleep(args.start_delay_s)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    if args.crash_after_s is not None:
        threading.Timer(args.crash_after_s, lambda: os._exit(1)).start()

    def on_sigterm(signum, frame):
        DRAINING.set()
        print("SIGTERM: draining", flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    if args.on_sigterm == "drain":
        signal.signal(signal.SIGTERM, on_sigterm)
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)
    server.socket.close()  # stop accepting: queued connections are refused from here on
    deadline = time.monotonic() + args.drain_timeout_s
    while STATE["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    print(f"drained, {STATE['in_flight']} request(s) left", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
