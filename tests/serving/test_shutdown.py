import asyncio
import signal
import threading
import time

import httpx
import pytest

from labsupport.serving.launcher import serve_subprocess
from labsupport.serving.loadgen import run_load_sync
from labsupport.serving.shutdown import (
    ShutdownContext,
    abort_in_flight,
    drain,
    encode_handler,
    resolve_handler,
)

from .helpers import listening_pids, wait_until


async def polite(ctx):
    """A learner-style handler: what `drain` does, written by hand."""
    ctx.log("draining")
    ctx.stop_accepting()
    await ctx.wait_idle(timeout_s=20)


class _Ref:  # what lab.ref("NAME") looks like to the server: picklable, .load() gives the function
    def load(self):
        return polite


def test_resolve_handler_forms():
    assert resolve_handler(None) is None
    assert resolve_handler("abort") is abort_in_flight and resolve_handler("drain") is drain
    assert resolve_handler("tests.serving.test_shutdown:polite") is polite
    assert resolve_handler(polite) is polite and resolve_handler(_Ref()) is polite
    assert resolve_handler(encode_handler(_Ref())) is polite
    assert resolve_handler(encode_handler(polite)) is polite
    with pytest.raises(ValueError):
        resolve_handler("nonsense")
    with pytest.raises(ImportError):
        resolve_handler("no_such_module_xyz:fn")


def test_context_wait_idle():
    class State:
        accepting, in_flight = True, 1

        async def wait_idle(self, timeout_s):
            await asyncio.sleep(0)
            return self.in_flight == 0

        def abort_all(self):
            self.in_flight = 0
            return 1

    state = State()
    ctx = ShutdownContext(state, drain_timeout_s=3)
    ctx.stop_accepting()
    assert not ctx.accepting and ctx.in_flight() == 1
    assert asyncio.run(ctx.wait_idle(0.1)) is False
    assert ctx.abort_all() == 1 and asyncio.run(ctx.wait_idle(0.1)) is True


def _sigterm_during_load(srv, *, n=6, max_tokens=60, then=None):
    """Stream `n` requests, SIGTERM once tokens flow; returns (report, exit code, exit seconds)."""
    box = {}

    def load():
        box["report"] = run_load_sync(
            srv.base_url, num_requests=n, concurrency=n, max_tokens=max_tokens
        )

    thread = threading.Thread(target=load)
    thread.start()
    with httpx.Client(base_url=srv.base_url, trust_env=False) as c:
        wait_until(lambda: c.get("/debug/heartbeat").json()["num_running"] == n, what="streams")
        time.sleep(0.2)
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        if then:
            then(c)
    code = srv.wait(20)
    thread.join(30)
    return box["report"], code, time.monotonic() - t0


def _gone(srv):
    assert not srv.alive() and not listening_pids(srv.port)


def test_default_sigterm_aborts_in_flight_streams():
    with serve_subprocess("--min-step-ms", "20") as srv:
        report, code, exit_s = _sigterm_during_load(srv)
        _gone(srv)
    assert code == 0 and exit_s < 5
    assert report.summary["by_status"] == {"truncated": 6}
    assert all(0 < r.tokens < 60 for r in report.results)
    assert "aborted 6 in-flight request(s)" in srv.output


def test_drain_finishes_in_flight_and_refuses_new_requests():
    seen = {}

    def probe(c):
        # readiness flips as soon as the handler runs, a moment after the signal
        wait_until(lambda: c.get("/ready").status_code == 503, timeout_s=5, what="not ready")
        seen["ready"] = c.get("/ready").status_code
        seen["new"] = c.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}).status_code

    with serve_subprocess("--min-step-ms", "20", "--shutdown-timeout", "20") as srv:
        report, code, exit_s = _sigterm_during_load(srv, then=probe)
        _gone(srv)
    assert code == 0 and exit_s < 10
    assert report.summary["by_status"] == {"ok": 6}
    assert all(r.tokens == 60 for r in report.results)
    assert seen == {"ready": 503, "new": 503}


def test_drain_is_bounded_by_the_shutdown_timeout():
    with serve_subprocess("--min-step-ms", "20", "--shutdown-timeout", "0.3") as srv:
        report, code, exit_s = _sigterm_during_load(srv, max_tokens=400)
        _gone(srv)
    assert code == 0 and exit_s < 5
    assert report.summary["by_status"] == {"truncated": 6}


def test_a_learner_handler_is_used_and_the_abort_fault_overrides_it():
    with serve_subprocess("--min-step-ms", "20", sigterm_handler=_Ref()) as srv:
        report, code, _ = _sigterm_during_load(srv, n=3, max_tokens=40)
    assert report.summary["by_status"] == {"ok": 3} and code == 0
    assert "sigterm handler: draining" in srv.output
    with serve_subprocess(
        "--min-step-ms", "20", "--fault", "abort_on_sigterm", sigterm_handler=_Ref()
    ) as srv:
        report, code, _ = _sigterm_during_load(srv, n=3, max_tokens=40)
    assert report.summary["by_status"] == {"truncated": 3} and code == 0


def test_a_second_signal_cuts_a_drain_short():
    with serve_subprocess("--min-step-ms", "20", "--shutdown-timeout", "60") as srv:

        def again(_client):
            time.sleep(0.3)
            srv.send_signal(signal.SIGTERM)

        report, code, exit_s = _sigterm_during_load(srv, max_tokens=400, then=again)
        _gone(srv)
    assert code == 0 and exit_s < 5
    assert report.summary["by_status"] == {"truncated": 6}
