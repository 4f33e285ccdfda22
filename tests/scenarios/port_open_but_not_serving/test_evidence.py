"""Evidence from outside a server: probes, scrapes and CPU time, as plain data."""

import os

import pytest

from labsupport import wire
from labsupport.scenarios.port_open_but_not_serving.evidence import Evidence, gather
from tests.serving.scrape_helpers import FakeMetrics, silent_listener

pytestmark = pytest.mark.timeout(60)


def test_a_server_that_answers():
    with FakeMetrics() as fake:
        fake.steps, fake.running = 7, 2
        ev = gather(fake.url, os.getpid(), ticks=3, period_s=0.2)
    assert ev.ticks == 3 and len(ev.cpu) == 4
    assert ev.tcp == [True] * 3 and ev.health == [200] * 3
    assert ev.completion == [False] * 3  # the fake only answers GET
    assert all(s.ok and s.value("vllm:iteration_tokens_total_count") == 7 for s in ev.scrapes)
    t, on_cpu, runnable = zip(*ev.cpu, strict=True)
    assert list(t) == sorted(t) and t[-1] >= 0.55
    assert all(r >= c for c, r in zip(on_cpu, runnable, strict=True))  # plus run-queue waits
    assert "none" not in ev.table() and "runnable s" in ev.table()
    assert wire.loads(wire.dumps(ev)) == ev  # crosses to the submission process as data


def test_a_server_that_never_answers():
    with silent_listener() as port:
        ev = gather(f"http://127.0.0.1:{port}", os.getpid(), ticks=2, period_s=0.1)
    assert ev.tcp == [True, True]  # the kernel completes the handshake from the backlog
    assert ev.health == [None, None] and not any(s.ok for s in ev.scrapes)
    assert ev.table().count("none") == 4


def test_empty_evidence():
    ev = Evidence(1.0)
    assert ev.ticks == 0 and ev.table().splitlines()[0].split()[0] == "t"
