"""Deployments over real processes: endpoints, routing, rolling updates under load, cleanup."""

from __future__ import annotations

import socket
import sys
import threading
import time
import urllib.request

import httpx
import psutil
import pytest

from labsupport.k8s import (
    Deployment,
    HTTPGet,
    PodSpec,
    Port,
    Probe,
    Recreate,
    RollingUpdate,
    Sleep,
)

pytestmark = pytest.mark.timeout(90)

SERVER = [sys.executable, "-m", "labsupport.k8s.demo_server", "--port", "$(PORT)"]


def _spec(*extra: str, **fields) -> PodSpec:
    return PodSpec(
        [*SERVER, *extra],
        ports=[Port(8000, "http")],
        readiness_probe=Probe(HTTPGet("/ready", "http"), period_seconds=1, failure_threshold=3),
        **fields,
    )


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


class StreamingClients:
    """Clients that keep streaming through the Service and count complete vs broken streams."""

    def __init__(self, url: str, threads: int = 4):
        self.url, self.ok, self.failed, self.errors = url, 0, 0, []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop) for _ in range(threads)]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def _loop(self):
        while not self._stop.is_set():
            try:
                with httpx.stream("GET", self.url + "/stream?n=10&interval_ms=30", timeout=10) as r:
                    body = "".join(r.iter_text())
                done = r.status_code == 200 and body.endswith("data: [DONE]\n\n")
                self.ok += done
                self.failed += not done
            except httpx.HTTPError as e:
                self.failed += 1
                self.errors.append(type(e).__name__)


def test_only_ready_pods_get_traffic_and_unready_is_not_restarted():
    with Deployment("web", _spec(), replicas=2, time_scale=0.1) as dep:
        assert dep.wait_ready(30)
        assert len(dep.endpoints) == 2
        sick = dep.pods[0]
        urllib.request.urlopen(f"http://127.0.0.1:{sick.port}/admin/fault/unready", b"").read()
        healthy = [(dep.pods[1].name, "127.0.0.1", dep.pods[1].port)]
        assert dep.wait_for(lambda d: d.endpoints == healthy == d.balancer.backends, 5)
        answers = {httpx.get(dep.url + "/", timeout=5).text.split()[2] for _ in range(12)}
        assert answers == {dep.pods[1].name}
        assert sick.restart_count == 0 and sick.status == "Running"


def _rollout_under_load(server_args: list[str], pre_stop_seconds: float):
    spec = _spec(
        *server_args,
        termination_grace_period_seconds=30,
        pre_stop=Sleep(pre_stop_seconds) if pre_stop_seconds else None,
    )
    strategy = RollingUpdate(max_surge=1, max_unavailable=0)
    with Deployment("web", spec, replicas=2, strategy=strategy, time_scale=0.1) as dep:
        assert dep.wait_ready(30)
        assert dep.wait_for(lambda d: len(d.balancer.backends) == 2, 5)
        with StreamingClients(dep.url) as clients:
            time.sleep(0.3)
            result = dep.rollout(spec.with_env(VERSION="2"), timeout_s=60)
            time.sleep(0.3)
        versions = {httpx.get(dep.url + "/", timeout=5).text.split()[-1] for _ in range(6)}
        return clients, result, versions, dep.describe()


def test_rolling_update_drain_and_prestop_lose_nothing_abort_loses_streams():
    abort, abort_result, _, _ = _rollout_under_load(["--on-sigterm", "abort"], 0)
    drain, result, versions, text = _rollout_under_load(["--on-sigterm", "drain"], 5)
    assert abort.failed > 0, "the default SIGTERM handler should cut in-flight streams"
    assert drain.failed == 0, f"graceful rollout lost {drain.failed} streams: {drain.errors}"
    assert drain.ok >= 10 and abort_result.succeeded and result.succeeded
    assert versions == {"2"}
    assert result.min_available >= 2, "maxUnavailable 0 must keep 2 pods available"
    reasons = [e.reason for e in result.events if e.kind == "Pod"]
    assert {"Killing", "PreStopHook", "Signal"} <= set(reasons)
    assert "ScalingReplicaSet" in text and "EndpointsSynced" in text


def test_max_surge_needs_a_spare_gpu():
    spec = _spec(gpus=1)
    surge = RollingUpdate(max_surge=1, max_unavailable=0)
    with Deployment(
        "llm",
        spec,
        replicas=2,
        strategy=surge,
        node_gpus=2,
        progress_deadline_seconds=8,
        time_scale=0.1,
    ) as dep:
        assert dep.wait_ready(30)
        result = dep.rollout(spec.with_env(VERSION="2"), timeout_s=30)
        assert not result.succeeded and result.reason == "ProgressDeadlineExceeded"
        pending = [p for p in dep.pods if not p.scheduled]
        assert pending and any(
            "Insufficient nvidia.com/gpu" in e.message for e in pending[0].events
        )
    no_surge = RollingUpdate(max_surge=0, max_unavailable=1)
    with Deployment("llm", spec, replicas=2, strategy=no_surge, node_gpus=2, time_scale=0.1) as dep:
        assert dep.wait_ready(30)
        result = dep.rollout(spec.with_env(VERSION="2"), timeout_s=30)
        assert result.succeeded and result.min_available == 1 and result.max_pods <= 2


def test_recreate_has_downtime_then_undo_and_scale():
    with Deployment("web", _spec(), replicas=2, strategy=Recreate(), time_scale=0.1) as dep:
        assert dep.wait_ready(30)
        first = dep.revision
        future = dep.rollout_in_background(dep.template.with_env(VERSION="2"), timeout_s=30)
        result = future.result(timeout=40)
        assert result.succeeded and result.min_available == 0, "Recreate stops everything"
        assert dep.undo(timeout_s=30).succeeded and dep.revision == first
        dep.scale(1)
        assert dep.wait_for(lambda d: len(d.endpoints) == 1 and d.complete(), 10)


def test_close_cleans_up_even_after_an_exception():
    before = _children()
    with pytest.raises(RuntimeError, match="boom"):
        with Deployment("web", _spec(), replicas=2, time_scale=0.1) as dep:
            assert dep.wait_ready(30)
            port = dep.balancer.port
            assert len(_children() - before) == 2
            raise RuntimeError("boom")
    assert not _children() - before, "pods left running"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    assert all(p.done.is_set() for p in dep.pods)
