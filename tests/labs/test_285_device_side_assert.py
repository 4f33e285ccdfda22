"""Checks of lab 285 (device-side assert triggered): the rerun, the diagnosis, the two fixes.

Diagnosis: the learner's environment is used for reruns, in fresh processes, of three failed
steps written for the seed (`truth.cases`): the variant's field, another field beside a
request whose out-of-range id the step never reached, and an index refused on the host. Their
`diagnose` must name the culprit request, the id, the engine's line that failed (read by the
check from its own rerun with launches blocking) and whether the process recovered (read
from the same rerun). Fix: `check_request` is asked about a table of requests (three vocab
sizes, every token-id field, boundary ids) and must refuse exactly the out-of-range ones with
a 400 naming id and field; `device_alive` is asked in one fresh process that goes from
healthy, to a host-side error, to a device-side assertion not yet reported, to one reported,
and must say True, True, False, False, quickly. Then two real servers replay the variant's
traffic: with both functions (bad requests refused, every good one served, /livez never
failing under load), and without `check_request` (the victim poisons the process: /livez
must fail soon after the first failed request and stay failed, and only then).
"""

from __future__ import annotations

import concurrent.futures
import hashlib

import pytest

from labsupport.scenarios import device_side_assert as scenario
from labsupport.scenarios.device_side_assert import liveness, rerun, runs, traffic
from tests.labs.truth import device_side_assert as truth

_CACHE: dict = {}
_TINY_EVIDENCE = {
    "batch": [{"id": "req-0001", "body": {"prompt": [1, 2, 600], "max_tokens": 2}}],
    "model_config": {"vocab_size": 512},
    "tokenizer": {"vocab_size": 520, "added_tokens": {}},
    "rerun": {"env": {}, "error": None, "traceback": "", "stderr": "", "after_ok": True,
              "after_error": None, "device": "cpu", "ignored_env": []},
}  # fmt: skip


def _reruns(cases: list, env: dict) -> list:
    """One rerun per case with `env`, in fresh processes, two at a time, once per session."""
    key_env = tuple(sorted(rerun.accepted_env(env)[0].items()))
    todo = [c for c in cases if (c.key, key_env) not in _CACHE]
    if todo:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            done = list(pool.map(lambda c: rerun.rerun(c.bodies(), env), todo))
        for case, result in zip(todo, done, strict=True):
            _CACHE[(case.key, key_env)] = result
    return [_CACHE[(c.key, key_env)] for c in cases]


def _env(lab) -> dict:
    env = lab.rerun_env()
    ok = isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str)
                                       for k, v in env.items())  # fmt: skip
    assert ok, f"rerun_env() must return a dict of strings (name -> value), got {env!r}"
    kept, refused = rerun.accepted_env(env)
    assert not refused, "rerun_env(): " + "; ".join(refused)
    return env


@pytest.mark.diagnosis
@pytest.mark.timeout(120)
def test_reruns_with_your_env_locate_the_failure_and_diagnose_names_it(lab, seed):
    """rerun_env makes reruns point at the failing line; diagnose names request, id, line,
    and whether the process recovers, on three failed steps rerun for real."""
    env = _env(lab)
    answer = lab.diagnose(_TINY_EVIDENCE)  # a stub fails here, before any rerun
    assert isinstance(answer, dict), f"diagnose must return a dict, got {type(answer).__name__}"
    cases = truth.cases(seed)
    trusted = _reruns(cases, truth.BLOCKING)
    for case, ref in zip(cases, trusted, strict=True):
        (mine,) = _reruns([case], env)  # one at a time: a wrong env fails at the first
        frame = truth.serving_frame(ref.traceback)
        if ref.error is None or frame is None:
            pytest.fail(f"the rerun of '{case.label}' did not fail as it should (not your "
                        f"code):\n{ref.report()[-2000:]}", pytrace=False)  # fmt: skip
        answer = lab.diagnose(truth.evidence(case, mine))
        assert isinstance(answer, dict), f"{case.label}: diagnose returned {answer!r}"
        assert answer.get("request_id") == case.culprit, (
            f"{case.label}: you named {answer.get('request_id')!r}, the step failed because of "
            f"another request of the batch. Which field does the failing line read, and whose "
            f"ids in that field are out of the model's range?"
        )
        got = answer.get("token_id")
        assert type(got) is int and got == case.token_id, (
            f"{case.label}: token_id {got!r} is not the id that made it fail (an int, out of "
            f"[0, {truth.VOCAB}) in the field the failing line reads)"
        )
        if not truth.op_matches(answer.get("op"), frame):
            reported = truth.serving_frame(mine.traceback)
            where = ""
            if reported is not None and truth.op_matches(answer.get("op"), reported):
                where = (" That is where your rerun's traceback reports the error, not where "
                         "it happened: does your environment make launches wait?")  # fmt: skip
            pytest.fail(f"{case.label}: op {answer.get('op')!r} is not the engine's line that "
                        f"ran the failing work.{where}", pytrace=False)  # fmt: skip
        want = bool(ref.after_ok)
        assert answer.get("recoverable") is want, (
            f"{case.label}: recoverable should be {want}: what happened to the next request "
            "in the same process? A device-side assertion and an IndexError raised on the "
            "host do not leave a process in the same state"
        )


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_check_request_refuses_out_of_range_ids_in_every_field_and_names_them(lab, seed):
    """check_request refuses exactly the requests with an id outside [0, vocab_size), in any
    token-id field, with an OpenAI-style 400 naming the id and the field."""
    for label, vocab, body, field_name, bad in truth.request_table(seed):
        answer = lab.check_request(body, vocab)
        if field_name is None:
            assert answer is None, (
                f"vocab_size {vocab}, {label}: every id is in range, but check_request "
                f"refused it: {answer!r:.200}"
            )
            continue
        error = answer.get("error") if isinstance(answer, dict) else None
        assert isinstance(error, dict), (
            f"vocab_size {vocab}, {label}: check_request let it through ({answer!r:.80}); "
            "the model has no such id"
        )
        assert error.get("code") == 400 and error.get("type") in (
            "BadRequestError", "invalid_request_error"), (
            f"vocab_size {vocab}, {label}: answer with OpenAI's 400 shape (code 400, type "
            f"BadRequestError), got code {error.get('code')!r}, type {error.get('type')!r}"
        )  # fmt: skip
        message = str(error.get("message", ""))
        assert str(bad) in message, (
            f"vocab_size {vocab}, {label}: the message {message!r:.120} does not name the "
            f"offending id {bad}: the client must learn which id"
        )
        assert error.get("param") == field_name or field_name in message, (
            f"vocab_size {vocab}, {label}: name the field ({field_name}) in param or message"
        )


def _trials(lab) -> list:
    result = lab.device_alive("cpu")  # a stub fails here, before the trial process starts
    assert isinstance(result, bool), f"device_alive must return a bool, got {result!r}"
    key = ("trials", hashlib.sha256(lab.ref("device_alive").source.encode()).hexdigest())
    if key not in _CACHE:
        _CACHE[key] = liveness.ask(lab.ref("device_alive"))
    return _CACHE[key]


@pytest.mark.fix
@pytest.mark.timeout(90)
def test_device_alive_tells_a_dead_device_from_a_healthy_one(lab):
    """device_alive: True when healthy and after a host-side IndexError, False once a kernel
    failed (reported or not yet), each call quick."""
    want = {"healthy": True, "host_error": True, "pending": False, "reported": False}
    says = {
        "healthy": "a healthy process",
        "host_error": "a process whose last error was an IndexError raised on the host "
        "(nothing ran on the device; it is fine)",
        "pending": "a process where a kernel has just failed a device-side assertion that "
        "nothing has reported to Python yet",
        "reported": "a process whose device-side assertion was reported (and caught)",
    }
    for trial in _trials(lab):
        assert trial.ok, f"the trial process did not finish (not a verdict on you): {trial.why}"
        assert trial.error is None, (
            f"in {says[trial.state]}, device_alive raised {trial.error}: return False instead, "
            "a probe handler that raises is a failed probe with no reason"
        )
        assert trial.verdict is want[trial.state], (
            f"in {says[trial.state]}, device_alive returned {trial.verdict!r}, it should "
            f"return {want[trial.state]}."
            + (" Does it make the device run something and read the result back, and does it "
               "let the error count?" if not want[trial.state] else "")
        )  # fmt: skip
        assert trial.seconds <= truth.LIVENESS_BUDGET_S, (
            f"in {says[trial.state]}, device_alive took {trial.seconds:.2f} s: it runs at every "
            f"probe, on the server's thread; keep it under {truth.LIVENESS_BUDGET_S:g} s"
        )


def _server_run(lab, seed: int, with_check: bool) -> runs.Run:
    assert lab.device_alive("cpu") in (True, False), "device_alive must return a bool"
    if with_check:
        lab.check_request({"prompt": [1, 2], "max_tokens": 2}, 512)  # stubs fail before a run
    source = lab.ref("device_alive").source
    key = ("server", seed, with_check, hashlib.sha256(source.encode()).hexdigest())
    if key in _CACHE:
        return _CACHE[key]
    v = scenario.variant(seed)
    calls = v.calls("suite")
    bad = []
    if with_check:
        for i, (_, body) in enumerate(traffic.bad_bodies(traffic.MODEL_VOCAB, seed)):
            call_id = f"bad-{i + 1}"
            bad.append(traffic.Call(call_id, 0.3 + 0.35 * i, {**body, "request_id": call_id},
                                    bool(body.get("stream")), "probe"))  # fmt: skip
    try:
        run = runs.run(
            calls + bad,
            check_request=lab.ref("check_request") if with_check else None,
            device_alive=lab.ref("device_alive"),
            probe_livez=True,
            bad_ids=v.bad_ids("suite") + [c.id for c in bad],
            label="grading replay",
        )
    except RuntimeError as exc:
        pytest.fail(f"the server did not start (not your code): {exc}"[:2000], pytrace=False)
    _CACHE[key] = run
    return run


@pytest.mark.fix
@pytest.mark.timeout(120)
def test_fixed_server_refuses_bad_requests_and_serves_every_good_one(lab, seed):
    """With check_request and device_alive: bad requests get a 400, every well-formed one is
    served (streams to [DONE]), /livez stays 200 under the load, no engine step fails."""
    run = _server_run(lab, seed, with_check=True)
    for o in run.outcomes:
        if o.id in run.bad_ids:
            assert 400 <= o.status < 500, (
                f"{o.id} carries an id the model does not have; the server answered "
                f"{o.status} {o.error or ''}"[:300]
                + ": refuse it at the API"
            )
    failed = [o for o in run.outcomes if o.id not in run.bad_ids and not o.served]
    assert not failed, (
        f"{len(failed)} well-formed request(s) not served, e.g. {failed[0].id}: status "
        f"{failed[0].status}, {failed[0].error or 'no error'}"[:300]
    )
    assert "engine step failed" not in run.server_log, (
        "an engine step still failed: a bad id reached the engine past check_request"
    )
    livez = run.probe_series("/livez")
    down = [p for p in livez if p.status != 200]
    assert livez and not down, (
        f"GET /livez failed {len(down)} time(s) of {len(livez)} on a healthy server under "
        "load (a kubelet restarts a pod for that): is device_alive quick and right?"
    )


@pytest.mark.fix
@pytest.mark.timeout(120)
def test_liveness_catches_the_dead_server_soon_and_only_then(lab, seed):
    """Without check_request the victim's id kills the device: /livez must stay 200 before
    and fail within the bound after the first failed request, and stay failed."""
    run = _server_run(lab, seed, with_check=False)
    failed_at = run.first_failure_s()
    assert failed_at is not None and run.served_good < run.good, (
        "the victim's request did not break the server in this run (not your code)"
    )
    livez = run.probe_series("/livez")
    sent = next(o.sent_s for o in run.outcomes if o.id == scenario.variant(seed).victim.id)
    early = [p for p in livez if p.t_s < sent - 0.2 and p.status != 200]
    assert not early, (
        f"GET /livez failed at {early[0].t_s:.2f} s, before anything went wrong "
        f"(the bad request came at {sent:.2f} s): liveness must not restart healthy pods"
    )
    caught = next((p for p in livez if p.t_s >= sent - 0.2 and p.status != 200), None)
    assert caught is not None and caught.t_s <= failed_at + truth.DETECT_BOUND_S, (
        f"the first request failed at {failed_at:.2f} s; GET /livez "
        + (f"first failed at {caught.t_s:.2f} s" if caught else "never failed")
        + f" (need within {truth.DETECT_BOUND_S:g} s): the process could not use its device "
        "any more, and liveness must say so"
    )
    back = [p for p in livez if p.t_s > caught.t_s and p.status == 200]
    assert not back, (
        f"GET /livez answered 200 again at {back[0].t_s:.2f} s after failing: the device is "
        "still dead; a liveness that flaps may never reach failureThreshold"
    )
