import json
import socket

import httpx
import pytest

from labsupport.scenarios.client_gone_gpu_still_busy.gateway import (
    ResponseMeter,
    _is_token_event,
    gateway,
)
from labsupport.serving.launcher import serve_subprocess


@pytest.fixture(scope="module")
def server():
    with serve_subprocess("--min-step-ms", "5") as srv:
        yield srv


def test_forwards_both_ways_logs_each_response_and_closes_its_port(server):
    with gateway(server.base_url) as gw:
        assert gw.url.startswith("http://127.0.0.1:") and gw.url != server.base_url
        with httpx.Client(base_url=gw.url, trust_env=False, timeout=10) as c:
            assert c.get("/health").status_code == 200
            body = {"prompt": "Hi", "max_tokens": 5, "stream": True}
            with c.stream("POST", "/v1/completions", json=body) as r:
                lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
            assert lines[-1] == "data: [DONE]" and len(lines) == 6
            assert json.loads(lines[0][6:])["object"] == "text_completion"
            chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
            assert c.post("/v1/chat/completions", json={**chat, "stream": True}).status_code == 200
            assert c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 3}).json()
        port = int(gw.url.rsplit(":", 1)[1])
        log = list(gw.log)
    assert [e["request"] for e in log] == [
        "GET /health", "POST /v1/completions", "POST /v1/chat/completions", "POST /v1/completions"
    ]  # fmt: skip
    assert [e["status"] for e in log] == [200] * 4
    assert [(e["tokens_from_upstream"], e["tokens_to_client"]) for e in log] == [
        (0, 0), (5, 5), (4, 4), (0, 0)  # a plain JSON answer is not metered
    ]  # fmt: skip
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there any more


def _leave_after(url: str, tokens: int, max_tokens: int = 200) -> None:
    body = {"prompt": "Hi", "max_tokens": max_tokens, "stream": True}
    with httpx.Client(trust_env=False, timeout=10) as c:
        with c.stream("POST", url + "/v1/completions", json=body) as r:
            got = 0
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    got += 1
                    if got == tokens:
                        break  # leaving the block closes the connection mid-stream


@pytest.mark.parametrize("on_client_close", ["close", "read"])
def test_a_client_that_leaves_is_a_499_and_the_server_connection_follows_the_setting(
    server, on_client_close
):
    with gateway(server.base_url, on_client_close=on_client_close) as gw:
        _leave_after(gw.url, 3)
        hb = {}
        for _ in range(400):  # the server notices the gateway's side at its next write
            hb = httpx.get(server.base_url + "/debug/heartbeat", trust_env=False).json()
            if hb["http_in_flight"] == 0:
                break
            import time

            time.sleep(0.01)
        entry = gw.log[-1]
    assert entry["status"] == 499 and 3 <= entry["tokens_to_client"] <= 30
    if on_client_close == "close":
        assert entry["tokens_from_upstream"] <= 30  # a few late on a loaded machine, not 200
    else:
        assert entry["tokens_from_upstream"] == 200  # read to the end for nobody
    assert hb["http_in_flight"] == 0


def test_gateway_to_nowhere_closes_the_client():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, never listening: connections are refused
        with gateway(f"http://127.0.0.1:{dead}") as gw:
            with httpx.Client(trust_env=False, timeout=5) as c, pytest.raises(httpx.HTTPError):
                c.get(gw.url + "/health")
            assert gw.clients_open == 0


def test_meter_follows_chunked_events_split_anywhere():
    events = [
        b'data: {"choices":[{"text":"a"}]}\n\n',
        b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n',
        b'data: {"choices":[{"text":""}]}\n\n',  # no text: not a token
        b"data: [DONE]\n\n",
    ]
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    raw = (head + body) * 2
    entries: list[dict] = []

    def new(status):
        entries.append({"status": status, "tokens_from_upstream": 0})
        return entries[-1]

    meter = ResponseMeter(new)
    ended = 0
    for i in range(0, len(raw), 7):  # TCP may split anything anywhere
        for _entry, _tokens, end in meter.feed(raw[i : i + 7]):
            ended += end
    assert [e["tokens_from_upstream"] for e in entries] == [2, 2]
    assert ended >= 2
    assert not _is_token_event(b" [DONE]") and not _is_token_event(b"{not json")


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError):
        with gateway("http://127.0.0.1:9", on_client_close="buffer"):
            pass
