"""Checks of lab 286, clients leave and the GPU keeps generating.

Diagnosis: the learner's `diagnose(metrics_before, metrics_after, gateway_log)` names the layer
that lets the engine go on for clients that left ("gateway", "server" or "nowhere"), how many
clients left and how many tokens the engine generated that no client received. It is compared
with `truth.answer`, first on written evidence whose answer is known (`truth.cases(seed)`: each
layer at fault, a healthy stack, nobody leaving, counters far from zero; the usual wrong
readings give other answers and the hint says which), then on three rounds of this run through
the real gateway to one real server: the variant's incident, the other layer at fault, and a
healthy stack (the server's own path that ends requests whose client left, switched off and on
with its `no_cancel_on_disconnect` fault). A constant, a rule that ignores one layer or a
formula that reads one counter fails one of them.

Fix: the learner's `stream_outputs` is probed in a contained process against a real engine,
stopped the two ways a server stops reading (cancelled at its `await`, closed at its `yield`)
and read to the end by a slow reader; then it runs in the real server (which re-executes
itself contained) under the variant's clients, straight, and the trusted side judges from the
raw scrapes and what each client received. Bounds hold from both sides: the engine must stop
within a few steps of the consumer leaving (a delay or a watchdog that waits hides the
failure) and must not stop a reader that is slow or reads 160 tokens (an abort after N tokens).
Everything measured is measured once per session: rounds per seed, probes per learner source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import httpx
import pytest

from labsupport.scenarios import client_gone_gpu_still_busy as scenario
from labsupport.scenarios.client_gone_gpu_still_busy import rounds, stream_probe
from tests.labs.truth import client_gone_gpu_still_busy as truth

_CACHE: dict = {}
TOKENS_AFTER_LEFT_MAX = 15  # engine tokens after the consumer left (75 ms of 5 ms steps)
WASTE_SHARE_MAX = 0.2  # of what the incident's handler wastes per client that left


# ---- diagnosis --------------------------------------------------------------------------
def _diagnose(lab, label: str, evidence: tuple) -> dict:
    got = lab.diagnose(*evidence)
    assert isinstance(got, dict), (
        f"{label}: diagnose must return a dict with lost_at, clients_left and "
        f"tokens_for_nobody, not {type(got).__name__}"
    )
    missing = sorted({"lost_at", "clients_left", "tokens_for_nobody"} - set(got))
    assert not missing, f"{label}: diagnose returned no {', '.join(missing)}"
    assert got["lost_at"] in truth.LOST_AT, (
        f"{label}: lost_at must be one of {truth.LOST_AT}, not {got['lost_at']!r}"
    )
    for key in ("clients_left", "tokens_for_nobody"):
        value = got[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        assert ok and math.isfinite(value), f"{label}: {key} must be a number, got {value!r}"
    return got


def _which_miss(got: dict, evidence: tuple, want: dict) -> str:
    for name, miss in truth.near_misses(*evidence).items():
        key, value = next(iter(miss.items()))
        if value != want[key] and abs(got[key] - value) < 0.5:
            return f" That is {name}."
    return ""


def _compare(lab, label: str, kind: str, evidence: tuple) -> None:
    want = truth.answer(*evidence)
    assert want["lost_at"] == kind, (
        f"{label}: the grader's evidence is inconsistent (not your code)"
    )
    got = _diagnose(lab, label, evidence)
    for key, what in (
        ("clients_left", "clients that closed their connection before their answer was "
                         "complete, as the gateway logged them"),
        ("tokens_for_nobody", "tokens the engine generated between the two scrapes that no "
                              "client received: the engine's counter against the gateway's log"),
    ):  # fmt: skip
        assert abs(got[key] - want[key]) < 0.5, (
            f"{label}: your {key} ({got[key]}) is not what the evidence says."
            + _which_miss(got, evidence, want)
            + f" Count {what}; counters are cumulative"
        )
    assert got["lost_at"] == want["lost_at"], (
        f"{label}: lost_at={got['lost_at']!r} does not fit the evidence. For the clients that "
        "left, compare what the gateway logged (status, tokens read from the server, tokens "
        "written to the client) with what the server counted and how the engine's requests "
        "ended, between the two scrapes"
    )


@pytest.mark.diagnosis
@pytest.mark.timeout(30)
def test_diagnosis_on_written_evidence(lab, seed):
    """diagnose answers a hand-made round and six written ones: layer, clients, tokens."""
    before, after, log = truth.HAND_MADE
    _compare(lab, "a hand-made round (2 clients left after 5 of 100 tokens, 1 read 10)",
             truth.HAND_MADE_LOST_AT, truth.HAND_MADE)  # fmt: skip
    for label, (kind, evidence) in truth.cases(seed).items():
        _compare(lab, label, kind, evidence)


def _evidence_rounds(seed: int) -> list[tuple[str, str, rounds.Round]]:
    """The variant's incident, the other layer at fault, a healthy stack: one server, ~12 s."""
    key = ("rounds", seed)
    if key in _CACHE:
        return _CACHE[key]
    v = scenario.variant(seed)
    other = "read" if v.gateway == "close" else "close"
    w = dataclasses.replace(v.workload, leaving_max_tokens=min(128, v.workload.leaving_max_tokens))
    other_w = scenario.variant(seed + 1000).workload
    other_w = dataclasses.replace(other_w, leaving=min(6, other_w.leaving), leaving_max_tokens=96)
    plans = [
        ("this incident's round", w, v.gateway, True),
        ("another round", other_w, other, True),
        ("a third round", w, "close", False),
    ]
    out = []
    try:
        with rounds.serve(None) as srv:
            for label, w, gateway, engine_goes_on in plans:
                srv.set_fault("no_cancel_on_disconnect", enabled=engine_goes_on)
                kind = "nowhere" if not engine_goes_on else (
                    "gateway" if gateway == "read" else "server"
                )  # fmt: skip
                for _attempt in range(2):  # a round that did not come out as planned runs again
                    r = rounds.run_round(srv, w, label=label, gateway=gateway)
                    evidence = (r.metrics_before, r.metrics_idle, r.gateway_log)
                    if truth.lost_at(*evidence) == kind and truth.clients_left(r.gateway_log) == (
                        w.leaving
                    ):
                        break
                else:
                    pytest.fail(f"{label} did not come out as planned twice (not your code): "
                                "run the check again", pytrace=False)  # fmt: skip
                out.append((f"{label} ({w.describe()})", kind, r))
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        pytest.fail(f"the rounds did not run (not your code): {exc!r}", pytrace=False)
    _CACHE[key] = out
    return out


@pytest.mark.diagnosis
@pytest.mark.timeout(90)
def test_diagnosis_on_this_runs_rounds(lab, seed):
    """diagnose reads three real rounds of this run (gateway log, two server scrapes) right."""
    _diagnose(lab, "a hand-made round", truth.HAND_MADE)  # fails fast, before any server
    for label, kind, r in _evidence_rounds(seed):
        _compare(lab, label, kind, (r.metrics_before, r.metrics_idle, r.gateway_log))


# ---- fix ----------------------------------------------------------------------------------
def _probes(lab) -> dict:
    """stream_outputs probed in every mode, in one contained process, once per source."""
    ref = lab.ref("stream_outputs")
    key = ("probes", hashlib.sha256(ref.source.encode()).hexdigest())
    if key not in _CACHE:
        try:
            _CACHE[key] = stream_probe.probe_all(ref)
        except (stream_probe.NotAStream, NotImplementedError) as exc:
            _CACHE[key] = str(exc) or type(exc).__name__
    outcome = _CACHE[key]
    if isinstance(outcome, str):
        pytest.fail(outcome, pytrace=False)
    return outcome


def _probe(lab, mode: str) -> stream_probe.Probe:
    p = _probes(lab)[mode]
    read = "to the end" if mode == "complete" else "and the client left"
    assert p.error is None, f"stream_outputs failed while the stream was read {read}: {p.error}"
    return p


def _assert_stopped(p: stream_probe.Probe, how: str) -> None:
    leave = stream_probe.LEAVE_AFTER_TOKENS
    assert p.tokens == leave, (
        f"the stream ended after {p.tokens} tokens, before the client left after {leave}: "
        "yield every output while someone is reading"
    )
    assert p.engine_reason == "abort", (
        f"{how}, and the engine went on: {p.tokens_after_left} more tokens computed for nobody "
        f"within 0.5 s, {p.kv_blocks_used} KV blocks still held (request "
        f"{p.engine_reason or 'still running'}). Stop the engine's work for it on that path"
    )
    assert p.tokens_after_left <= TOKENS_AFTER_LEFT_MAX, (
        f"{how}: the engine request ended, but only after {p.tokens_after_left} more tokens "
        f"(at most {TOKENS_AFTER_LEFT_MAX}): do it at once, not after a delay"
    )
    assert p.kv_blocks_used == 0, f"the request ended but {p.kv_blocks_used} KV blocks are held"


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_fix_when_the_task_is_cancelled(lab):
    """A client that leaves while the stream waits for a token: the engine request ends."""
    p = _probe(lab, "cancel")
    _assert_stopped(
        p,
        "the consuming task was cancelled while stream_outputs awaited the next token "
        "(asyncio.CancelledError, a BaseException since Python 3.8: `except Exception` misses it)",
    )
    assert p.cancel_propagated, (
        "the engine request ended, but the CancelledError did not reach the task that was "
        "cancelled: stream_outputs swallowed it. Re-raise it, so the server's task ends as "
        "cancelled (asyncio's rule, and what AsyncLLM.generate does)"
    )


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_fix_when_the_generator_is_closed(lab):
    """A client that leaves between two tokens: the generator is closed, the request ends."""
    p = _probe(lab, "close")
    _assert_stopped(
        p,
        "the consumer stopped between two tokens and closed stream_outputs (GeneratorExit at "
        "its `yield`, as on an ASGI server where the disconnect is only seen at the next write, "
        "or when the generator is garbage-collected)",
    )


@pytest.mark.fix
@pytest.mark.timeout(60)
def test_fix_streams_everything_to_a_client_that_stays(lab):
    """A slow client that reads all 160 tokens gets each and the final output; nothing ends."""
    p = _probe(lab, "complete")
    want = p.max_tokens
    assert p.tokens == want and p.last_reason == "length" and p.engine_reason == "length", (
        f"a client that read to the end, pausing twice, got {p.tokens} of {want} tokens, the "
        f"last output finished with {p.last_reason!r} and the engine ended the request with "
        f"{p.engine_reason!r}: stop the engine's work only when the consumer goes away (not "
        "after some tokens, not when it reads slowly), and yield every output including the last"
    )


def problems(r: rounds.Round) -> list[str]:
    """What a handler that ends abandoned requests at once would not show (empty: none)."""
    w, out = r.workload, []
    gone = [c for c in r.leaving if c.status == "client_disconnect"]
    if len(gone) != w.leaving or any(c.tokens != w.leave_after_tokens for c in gone):
        return [
            f"only {len(gone)} of {w.leaving} leaving clients got their {w.leave_after_tokens} "
            f"tokens and hung up as planned (status, tokens: "
            f"{[(c.status, c.tokens) for c in r.leaving]})"
        ]
    if r.complete_streams != len(r.staying):
        out.append(
            f"only {r.complete_streams} of {len(r.staying)} clients that stayed connected got "
            f"all {w.staying_max_tokens} tokens and [DONE] (status, tokens: "
            f"{[(c.status, c.tokens) for c in r.staying]}): yield every output"
        )
    finished = sum(
        r.delta("vllm:request_success_total", finished_reason=reason)
        for reason in ("stop", "length", "abort", "error", "repetition")
    )
    if r.generated_tokens < r.delivered_tokens or finished != w.leaving + w.staying:
        out.append(
            f"the server's counters do not match what its clients saw ({r.generated_tokens} "
            f"tokens generated for {r.delivered_tokens} received, {finished:.0f} requests "
            f"finished of {w.leaving + w.staying})"
        )
    seen = int(r.delta("srelab:client_disconnects_total"))
    if seen != w.leaving:
        out.append(
            f"the server counted {seen} of the {w.leaving} clients leaving: for the others the "
            "stream went on to its end as if someone read it. Does stream_outputs end normally, "
            "without an exception, when its client leaves?"
        )
    aborted = int(r.delta("vllm:request_success_total", finished_reason="abort"))
    if aborted != w.leaving:
        out.append(f"{aborted} requests ended as aborted, {w.leaving} clients left")
    if r.running_after_clients_left or r.kv_blocks_after_clients_left:
        out.append(
            f"after the last client was done the engine still ran {r.running_after_clients_left} "
            f"requests holding {r.kv_blocks_after_clients_left} KV blocks"
        )
    for_nobody = r.generated_tokens - r.delivered_tokens
    bound = WASTE_SHARE_MAX * w.leaving * (w.leaving_max_tokens - w.leave_after_tokens)
    if for_nobody > bound:
        out.append(
            f"the engine generated {for_nobody} tokens that no client received "
            f"({for_nobody / w.leaving:.0f} per client that left, at most {bound / w.leaving:.0f})"
        )
    if int(r.gauge("srelab:kv_cache_blocks_used", at="idle")):
        out.append("KV blocks were still held once the engine was idle")
    return out


@pytest.mark.fix
@pytest.mark.timeout(120)
def test_fix_on_the_real_server(lab, seed):
    """In the real server under the variant's clients: nothing for nobody, every token for all."""
    _probes(lab)  # fails fast (not written yet, not a generator) before any server starts
    w = scenario.variant(seed).workload
    key = ("server", seed, hashlib.sha256(lab.ref("stream_outputs").source.encode()).hexdigest())
    if key not in _CACHE:
        try:
            _CACHE[key] = rounds.run_stack(lab.ref("stream_outputs"), w, gateway="",
                                           label="yours", show_progress=False)  # fmt: skip
        except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
            _CACHE[key] = f"the round with your stream_outputs did not complete: {exc!r}"
    r = _CACHE[key]
    if isinstance(r, str):
        pytest.fail(r, pytrace=False)
    found = problems(r)
    assert not found, f"with your stream_outputs in the server ({w.describe()}): " + "; ".join(
        found
    )
