import json
import socket

import httpx

from labsupport.serving.buffering_proxy import ignore_client_abort_proxy
from labsupport.serving.launcher import serve_subprocess


def test_proxy_forwards_both_ways_and_closes_its_port():
    with serve_subprocess("--min-step-ms", "2") as srv:
        with ignore_client_abort_proxy(srv.base_url) as url:
            assert url.startswith("http://127.0.0.1:") and url != srv.base_url
            with httpx.Client(base_url=url, trust_env=False, timeout=10) as c:
                assert c.get("/health").status_code == 200
                body = {"prompt": "Hi", "max_tokens": 5, "stream": True}
                with c.stream("POST", "/v1/completions", json=body) as r:
                    lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
                assert lines[-1] == "data: [DONE]" and len(lines) == 6
                assert json.loads(lines[0][6:])["object"] == "text_completion"
            port = int(url.rsplit(":", 1)[1])
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there any more


def test_proxy_to_nowhere_closes_the_client():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, never listening: connections are refused
        with ignore_client_abort_proxy(f"http://127.0.0.1:{dead}") as url:
            with httpx.Client(trust_env=False, timeout=5) as c:
                try:
                    c.get(url + "/health")
                    raise AssertionError("expected the proxy to drop the connection")
                except httpx.HTTPError:
                    pass
