"""Probe designs as pod specs; the scrape-and-ask handler; the 1-token inference handler."""

import pytest

from labsupport.k8s.probes import Call, HTTPGet, ProbeTarget, TCPSocket, run_probe
from labsupport.scenarios.port_open_but_not_serving import probesets
from labsupport.scenarios.port_open_but_not_serving.probesets import InferenceCheck, ScrapeCheck
from labsupport.serving.launcher import serve_subprocess
from tests.serving.scrape_helpers import FakeMetrics, silent_listener

pytestmark = pytest.mark.timeout(60)
PORT = probesets.CONTAINER_PORT


def test_designs():
    assert isinstance(probesets.INCIDENT.liveness.handler, TCPSocket)
    assert isinstance(probesets.CLASSIC.readiness.handler, Call)
    mine = probesets.from_functions(lambda p, c: True)
    assert isinstance(mine.readiness.handler, HTTPGet)  # readiness=None keeps /health
    spec = mine.pod_spec()
    assert "$(PORT)" in spec.command and spec.liveness_probe is mine.liveness
    assert spec.startup_probe is probesets.STARTUP
    assert "liveness:  call liveness()" in mine.describe()


def test_scrape_check_hands_the_previous_scrape_of_the_same_container():
    seen = []

    def fn(previous, current):
        seen.append((previous, current))
        return current.value("srelab:engine_steps_total") > 0

    check = ScrapeCheck(fn, "liveness")
    with FakeMetrics() as fake:
        first = ProbeTarget(ports={PORT: fake.port})
        assert check(first)[0] is False
        fake.steps = 5
        ok, message = check(first)
        assert ok is True and "liveness(): True" in message
        assert seen[0][0] is None and seen[1][0] is seen[0][1]
        check(ProbeTarget(ports={PORT: fake.port}))  # a restarted container: a new target
        assert seen[2][0] is None
    assert [v for _, v, _ in check.history] == [False, True, True]


def test_scrape_check_verdicts_that_are_not_bools_fail():
    with FakeMetrics() as fake:
        ok, message = ScrapeCheck(lambda p, c: 1, "readiness")(ProbeTarget(ports={PORT: fake.port}))
    assert ok is False and "not True or False" in message


def test_scrape_check_under_a_call_probe_fails_on_exceptions_and_silence():
    def boom(previous, current):
        raise NotImplementedError("write me")

    with FakeMetrics() as fake:
        r = run_probe(Call(ScrapeCheck(boom, "liveness")), ProbeTarget(ports={PORT: fake.port}), 1)
    assert not r.ok and "NotImplementedError" in r.message
    with silent_listener() as port:
        check = ScrapeCheck(lambda p, c: c.ok, "liveness")
        r = run_probe(Call(check), ProbeTarget(ports={PORT: port}), 1.0)
    assert not r.ok and "timed out" in r.message


def test_inference_check_against_the_real_server_and_a_dead_port():
    with serve_subprocess() as srv:
        ok, message = InferenceCheck()(ProbeTarget(ports={PORT: srv.port}))
    assert ok and "HTTP 200" in message
    ok, message = InferenceCheck()(ProbeTarget(ports={PORT: srv.port}))
    assert not ok
