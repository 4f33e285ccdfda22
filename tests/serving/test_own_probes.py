"""The server's own /livez and /readyz: logic given at start, a scrape of its own /metrics."""

import httpx
import psutil

from labsupport.grading.target import ExerciseRef
from labsupport.serving.launcher import serve_subprocess
from labsupport.serving.own_probes import OwnProbes
from labsupport.serving.shutdown import encode_handler

TEXT = "srelab:engine_alive 1.0\nvllm:iteration_tokens_total_count 7.0\n"


def test_previous_is_the_scrape_of_the_previous_call_of_the_same_endpoint():
    seen = []

    def livez(previous, current):
        seen.append((previous, current))
        return True

    probes = OwnProbes(livez=livez, readyz=lambda previous, current: previous is None)
    assert probes.answer("livez", TEXT, now_s=1.0) == (200, {"ok": True})
    assert probes.answer("readyz", TEXT, now_s=1.5) == (200, {"ok": True})
    assert probes.answer("livez", TEXT, now_s=2.0) == (200, {"ok": True})
    assert probes.answer("readyz", TEXT, now_s=2.5) == (503, {"ok": False})
    (first_prev, first), (second_prev, second) = seen
    assert first_prev is None and second_prev is first
    assert (first.t_s, second.t_s) == (1.0, 2.0)
    assert second.value("vllm:iteration_tokens_total_count") == 7.0


def test_a_handler_that_raises_or_answers_no_bool_fails_with_the_reason():
    probes = OwnProbes(livez=lambda p, c: 1 / 0, readyz=lambda p, c: "yes")
    status, body = probes.answer("livez", TEXT, now_s=0.0)
    assert status == 503 and body["error"].startswith("ZeroDivisionError")
    status, body = probes.answer("readyz", TEXT, now_s=0.0)
    assert status == 503 and "not a bool" in body["error"]
    assert OwnProbes().answer("livez", TEXT, now_s=0.0)[0] == 404


def alive(previous, current):
    """A handler given as module:function (trusted code: runs in the server itself)."""
    return current.value("srelab:engine_alive") == 1.0


LEARNER = """
def readyz(previous, current):
    steps = current.value("vllm:iteration_tokens_total_count")
    return previous is None or steps >= previous.value("vllm:iteration_tokens_total_count")
"""


def test_served_by_a_live_server_with_trusted_logic():
    with serve_subprocess(
        "--min-step-ms", "5", "--livez-handler", "tests.serving.test_own_probes:alive"
    ) as srv:  # fmt: skip
        with httpx.Client(base_url=srv.base_url, trust_env=False, timeout=10) as c:
            assert c.get("/livez").json() == {"ok": True}
            assert c.get("/readyz").status_code == 404  # no handler, no route
        assert "labsupport.contain" not in " ".join(psutil.Process(srv.pid).cmdline())


def test_learner_logic_runs_contained():
    ref = ExerciseRef(LEARNER, "<test cells>", "readyz")
    with serve_subprocess("--min-step-ms", "5", "--readyz-handler", encode_handler(ref)) as srv:
        with httpx.Client(base_url=srv.base_url, trust_env=False, timeout=10) as c:
            assert [c.get("/readyz").status_code for _ in range(2)] == [200, 200]
        cmdline = " ".join(psutil.Process(srv.pid).cmdline())
        assert "labsupport.contain" in cmdline  # re-executed under the warden, same pid
