"""Streaming clients: outcomes of real streams, cut streams, refusals, and the pod of each."""

from __future__ import annotations

import signal
import time

import pytest

from labsupport.k8s.balancer import Balancer
from labsupport.k8s.traffic import StreamingLoad, attach_backends, by_status
from labsupport.serving.launcher import serve_subprocess

pytestmark = pytest.mark.timeout(90)


def test_streams_complete_and_name_their_pod():
    with serve_subprocess("--min-step-ms", "5") as srv, Balancer() as lb:
        lb.set_backends([("pod-a", "127.0.0.1", srv.port)])
        with StreamingLoad(lb.url, clients=2, min_tokens=4, max_tokens=8, max_requests=6) as load:
            assert load.wait_for_requests(6, timeout_s=30)
        attach_backends(load.records, lb)
    assert by_status(load.records) == {"ok": 6}
    assert all(4 <= r.tokens == r.max_tokens <= 8 for r in load.records)
    assert {r.backend for r in load.records} == {"pod-a"}
    assert all(r.end_s > r.start_s for r in load.records)


def test_sigterm_abort_truncates_and_drain_refuses_new_requests():
    with serve_subprocess("--min-step-ms", "20") as srv:
        with StreamingLoad(srv.base_url, clients=3, min_tokens=200, max_tokens=200) as load:
            assert _wait_streaming(load)
            srv.send_signal(signal.SIGTERM)  # default --shutdown-timeout 0: abort
            srv.wait(20)
    cut = [r for r in load.records if r.status == "truncated"]
    assert len(cut) >= 3 and all(0 < r.tokens < 200 for r in cut)
    assert "aborted" in cut[0].error
    with serve_subprocess("--min-step-ms", "20", "--shutdown-timeout", "5") as srv:
        with StreamingLoad(srv.base_url, clients=2, min_tokens=60, max_tokens=60) as load:
            assert _wait_streaming(load)
            srv.send_signal(signal.SIGTERM)  # drain: in-flight finish, new ones get 503
            srv.wait(20)
    statuses = by_status(load.records)
    assert statuses.get("ok", 0) >= 2 and "truncated" not in statuses
    refused = [r for r in load.records if r.status == "http_error"]
    assert all(r.http_status == 503 for r in refused)


def _wait_streaming(load: StreamingLoad) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if sum(r.client_port is not None for r in load.records) >= load.clients:
            time.sleep(0.3)  # tokens are flowing
            return True
        time.sleep(0.02)
    return False
