"""Shared by the serving tests: scraping /metrics, waiting for a condition, ports."""

from __future__ import annotations

import json
import socket
import time

import httpx
import psutil

from labsupport.serving.metrics import metric_value


def metric(client: httpx.Client, base_url: str, name: str, **labels) -> float:
    value = metric_value(client.get(f"{base_url}/metrics").text, name, **labels)
    assert value is not None, f"{name} missing from /metrics"
    return value


def heartbeat(client: httpx.Client, base_url: str) -> dict:
    return client.get(f"{base_url}/debug/heartbeat").json()


def wait_until(cond, timeout_s: float = 10.0, interval_s: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not met within {timeout_s} s"
        time.sleep(interval_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_pids(port: int) -> set[int]:
    return {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def tcp_connects(port: int, timeout_s: float = 1.0) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def read_tokens(client: httpx.Client, base_url: str, n: int, **body) -> tuple[str, list[str]]:
    """Open a stream, read `n` token events, hang up; returns (request id, the texts)."""
    body = {"prompt": "Hello", "stream": True, "temperature": 0, **body}
    texts, rid = [], ""
    with client.stream("POST", f"{base_url}/v1/completions", json=body) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                rid = event["id"]
                texts.append(event["choices"][0]["text"])
                if len(texts) >= n:
                    break
    return rid, texts
