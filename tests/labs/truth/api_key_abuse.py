"""Reference answers of lab 291 (one API key slows everyone down): who hurts, and the limits.

    >>> from tests.labs.truth import api_key_abuse as truth
    >>> truth.diagnose(truth.HAND_MADE)
    {'key': 'sk-b', 'how': 'max_tokens', 'token_share': 0.7, 'peak_streams': 2}

The diagnosis is read from a gateway access log (rows as `evidence.access_view` gives them):
the key whose responses took the largest share of the tokens generated, and how it took them:
"streams" when its peak of responses in flight is at least STREAMS_FACTOR times any other
key's peak, else "max_tokens" (a few responses, each long). The limits are graded by replaying
admit/settle calls with given clocks through the learner's Lua in a real Redis (`replays`),
and by bursts of concurrent clients through two gateway replicas (`bursts`).
"""

from __future__ import annotations

import random

from labsupport.gateway.clients import Traffic
from labsupport.gateway.limits import Limits
from labsupport.scenarios import api_key_abuse as scenario
from labsupport.scenarios.api_key_abuse.bursts import Burst
from labsupport.scenarios.api_key_abuse.replay import Call

STREAMS_FACTOR = 5
SHARE_TOLERANCE = 0.01
BUCKET_TOLERANCE_MS = 50  # plus 5 %: a bucket's wait, computed from the same numbers
STREAM_RETRY_MS = (1000, 10_000)  # a refusal for streams in flight: retry in 1 to 10 s
VICTIM_P95_FACTOR = 3.0  # victims' p95 TTFT under load, yours: within 3x the quiet round's
VICTIM_P95_SLACK_MS = 150.0  # ... or within this much of it, whichever is larger
MIN_VICTIMS_SERVED = 0.9  # of the victims' requests in your busy round: answered, not refused
T0_MS = 1_764_000_000_000


def _row(key, start, end, status=200, max_tokens=16, tokens=16, ttft=30.0) -> dict:
    return {"start_s": start, "end_s": end, "key": key, "status": status,
            "prompt_tokens": 28, "max_tokens": max_tokens,
            "completion_tokens": tokens if status == 200 else 0,
            "ttft_ms": ttft if status == 200 else None}  # fmt: skip


# sk-a sends the most requests (back to back: an end and the next start tie, one at a time);
# sk-b sends two long answers at once: 140 of the 200 tokens; sk-c asks much, gets little.
HAND_MADE = [
    _row("sk-a", 0.0, 0.5, tokens=10),
    _row("sk-a", 0.5, 1.0, tokens=10),
    _row("sk-a", 1.0, 1.5, tokens=10),
    _row("sk-a", 1.5, 2.0, tokens=10),
    _row("sk-b", 0.2, 3.0, max_tokens=200, tokens=70),
    _row("sk-b", 0.3, 3.1, max_tokens=200, tokens=70),
    _row("sk-c", 0.4, 0.6, max_tokens=250, tokens=20),
    _row("sk-a", 2.0, 2.1, status=429),
    _row("sk-c", 0.45, 0.5, status=401),
]


def token_share(log: list[dict], key: str) -> float:
    total = sum(r["completion_tokens"] for r in log if r["status"] == 200)
    mine = sum(r["completion_tokens"] for r in log if r["status"] == 200 and r["key"] == key)
    return mine / total if total else 0.0


def peak_streams(log: list[dict], key: str) -> int:
    """The most of `key`'s 200s in flight at once (an end before a start at the same time)."""
    served = [r for r in log if r["key"] == key and r["status"] == 200]
    events = sorted([(r["start_s"], 1) for r in served] + [(r["end_s"], -1) for r in served])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def diagnose(log: list[dict]) -> dict:
    keys = sorted({r["key"] for r in log if r["status"] == 200})
    key = max(keys, key=lambda k: token_share(log, k))
    others = max((peak_streams(log, k) for k in keys if k != key), default=0)
    peak = peak_streams(log, key)
    how = "streams" if peak >= STREAMS_FACTOR * max(1, others) else "max_tokens"
    return {"key": key, "how": how, "token_share": round(token_share(log, key), 4),
            "peak_streams": peak}  # fmt: skip


def _written(rng: random.Random, how: str, *, decoy_tokens: bool) -> list[dict]:
    """A made-up busy minute: five customers, one heavy (by `how`), the busiest by count a
    different one; with `decoy_tokens`, a third key asks for long answers that end early."""
    keys = [f"sk-{name}-{rng.randrange(16**4):04x}" for name in rng.sample(
        ["amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heath"], 5)]  # fmt: skip
    heavy, chatty, decoy = keys[0], keys[1], keys[2]
    log = []
    for key in keys[1:]:
        for _session in range(2 if key == chatty else 1):  # the busiest key: two at a time
            t = rng.uniform(0, 0.3)
            for _ in range(20 if key == chatty else rng.randint(8, 14)):
                d = rng.uniform(0.15, 0.4)
                ask = rng.choice((12, 16, 24))
                got = ask
                if key == decoy and decoy_tokens:
                    ask, got = 250, rng.randint(4, 12)
                log.append(_row(key, round(t, 3), round(t + d, 3), max_tokens=ask, tokens=got))
                t += d + (0.0 if key == chatty else rng.uniform(0.05, 0.3))
    if how == "max_tokens":
        for _ in range(rng.randint(4, 6)):
            s = round(rng.uniform(1.0, 2.0), 3)
            log.append(_row(heavy, s, round(s + rng.uniform(5, 7), 3), max_tokens=230,
                            tokens=rng.randint(200, 230), ttft=40.0))  # fmt: skip
    else:
        for _ in range(rng.randint(16, 22)):
            s = round(rng.uniform(1.0, 1.3), 3)
            log.append(_row(heavy, s, round(s + rng.uniform(3, 4), 3), max_tokens=96,
                            tokens=96, ttft=40.0))  # fmt: skip
    for _ in range(rng.randint(2, 5)):
        s = round(rng.uniform(0, 8), 3)
        log.append(_row(rng.choice(keys), s, s, status=429))
    return sorted(log, key=lambda r: r["start_s"])


def cases(seed: int) -> dict[str, list[dict]]:
    """Written access logs whose answers are known, both kinds of heavy key, with decoys."""
    rng = random.Random(f"291-cases-{seed}")
    return {
        "a log where one key asks for long answers": _written(
            rng, "max_tokens", decoy_tokens=False
        ),  # fmt: skip
        "a log where one key opens many responses at once": _written(
            rng, "streams", decoy_tokens=True
        ),  # fmt: skip
        "a log with a key that asks for long answers and gets short ones": _written(
            rng, "max_tokens", decoy_tokens=True
        ),
    }


# ---- the limits: replays with given clocks --------------------------------------------------
def _replay_cases(seed: int) -> dict:
    """label -> (calls, [(admitted, retry_kind, exact_ms)] per call: retry_kind "bucket" (the
    wait exact_ms), "streams" (STREAM_RETRY_MS), or None (admitted, or a settle))."""
    rng = random.Random(f"291-replay-{seed}")
    t = T0_MS + rng.randrange(10**6)
    big = dict(rpm=10_000, tpm=10**9, max_streams=1000, max_global=1000)
    out = {}

    rpm = rng.randint(3, 6)
    plan = Limits(**{**big, "rpm": rpm})
    calls = [Call("admit", "sk-r", plan, t, 20) for _ in range(rpm + 1)]
    want = [(True, None, 0)] * rpm + [(False, "bucket", 60000 / rpm)]
    calls += [Call("admit", "sk-r", plan, t + 60000 // rpm + 1, 20),
              Call("admit", "sk-r", plan, t + 60000 // rpm + 1, 20)]  # fmt: skip
    want += [(True, None, 0), (False, "bucket", 60000 / rpm - 1)]
    out[f"requests per minute ({rpm})"] = (calls, want)

    tpm = rng.choice((1000, 1500, 2000))
    plan = Limits(**{**big, "tpm": tpm})
    a, b, c, d = int(0.6 * tpm), int(0.6 * tpm), int(0.3 * tpm), int(0.2 * tpm)
    calls = [Call("admit", "sk-t", plan, t, n) for n in (a, b, c, d)]
    left = tpm - a
    want = [(True, None, 0), (False, "bucket", (b - left) * 60000 / tpm), (True, None, 0),
            (False, "bucket", (d - (left - c)) * 60000 / tpm)]  # fmt: skip
    out[f"tokens per minute ({tpm}), a request's whole possible cost"] = (calls, want)

    cost, used = int(0.9 * tpm), int(0.1 * tpm)
    calls = [Call("admit", "sk-u", plan, t, cost), Call("settle", "sk-u", plan, t, cost, used),
             Call("admit", "sk-u", plan, t, int(0.85 * tpm))]  # fmt: skip
    want = [(True, None, 0), (True, None, 0), (True, None, 0)]
    out["settle gives back what a response did not use"] = (calls, want)

    small = int(0.1 * tpm)
    calls = [Call("admit", "sk-v", plan, t, small), Call("settle", "sk-v", plan, t, small, 0),
             Call("settle", "sk-v", plan, t, small, 0), Call("admit", "sk-v", plan, t, tpm),
             Call("admit", "sk-v", plan, t, int(0.05 * tpm))]  # fmt: skip
    want = [(True, None, 0)] * 4 + [(False, "bucket", int(0.05 * tpm) * 60000 / tpm)]
    out["a bucket never holds more than a minute's tokens"] = (calls, want)

    streams = rng.randint(2, 3)
    plan = Limits(**{**big, "max_streams": streams})
    calls = [Call("admit", "sk-s", plan, t, 20) for _ in range(streams + 1)]
    want = [(True, None, 0)] * streams + [(False, "streams", 0)]
    calls += [Call("settle", "sk-s", plan, t, 20, 20), Call("admit", "sk-s", plan, t, 20),
              Call("admit", "sk-s", plan, t, 20)]  # fmt: skip
    want += [(True, None, 0), (True, None, 0), (False, "streams", 0)]
    calls += [Call("settle", "sk-s", plan, t, 20, 20) for _ in range(streams + 2)]
    want += [(True, None, 0)] * (streams + 2)
    calls += [Call("admit", "sk-s", plan, t, 20) for _ in range(streams + 1)]
    want += [(True, None, 0)] * streams + [(False, "streams", 0)]
    out[f"responses in flight per key ({streams}), freed at the end, never below zero"] = (
        calls, want)  # fmt: skip

    glob = rng.randint(3, 4)
    plan = Limits(**{**big, "max_streams": 2, "max_global": glob})
    keys = [f"sk-g{i}" for i in range(glob + 1)]
    calls = [Call("admit", k, plan, t, 20) for k in keys]
    want = [(True, None, 0)] * glob + [(False, "streams", 0)]
    calls += [Call("settle", keys[0], plan, t, 20, 20), Call("admit", keys[-1], plan, t, 20)]
    want += [(True, None, 0), (True, None, 0)]
    out[f"responses in flight, every key together ({glob})"] = (calls, want)

    plan = Limits(rpm=2, tpm=tpm, max_streams=1, max_global=1000)
    calls = [Call("admit", "sk-n", plan, t, small), Call("admit", "sk-n", plan, t, small),
             Call("settle", "sk-n", plan, t, small, small), Call("admit", "sk-n", plan, t, small),
             Call("admit", "sk-n", plan, t, tpm - 2 * small)]  # fmt: skip
    want = [(True, None, 0), (False, "streams", 0), (True, None, 0), (True, None, 0),
            (False, "bucket", 30000)]  # fmt: skip
    out["a refused request is charged nothing"] = (calls, want)
    return out


def replay_cases(seed: int) -> dict:
    return _replay_cases(seed)


def judge_replay(want, got) -> str | None:
    """None when `got` (Admissions) matches `want`, else what differs (for the hint)."""
    for i, ((admitted, kind, exact), a) in enumerate(zip(want, got, strict=True)):
        if a.error and a.reason != "settled":
            return f"call {i + 1}: the script failed: {a.error}"
        if a.reason == "settled":
            if a.error:
                return f"call {i + 1} (settle): the script failed: {a.error}"
            continue
        if a.admitted != admitted:
            verdict = "admitted" if a.admitted else f"refused ({a.reason})"
            return f"call {i + 1} should be {'admitted' if admitted else 'refused'}: {verdict}"
        if kind == "bucket":
            if abs(a.retry_after_ms - exact) > BUCKET_TOLERANCE_MS + 0.05 * exact:
                return (f"call {i + 1}: retry_after_ms {a.retry_after_ms}, the bucket has "
                        f"enough again in {exact:.0f} ms")  # fmt: skip
        if kind == "streams":
            low, high = STREAM_RETRY_MS
            if not low <= a.retry_after_ms <= high:
                return (f"call {i + 1}: refused for responses in flight, retry_after_ms "
                        f"{a.retry_after_ms}: between {low} and {high}")  # fmt: skip
    return None


# ---- the limits: bursts through two replicas ------------------------------------------------
def bursts(seed: int) -> list[Burst]:
    """Concurrent clients on fresh keys: the limits must hold across gateway replicas."""
    rng = random.Random(f"291-bursts-{seed}")
    big = dict(rpm=10_000, tpm=10**7, max_streams=1000, max_global=1000)
    rpm = rng.randint(8, 14)
    tpm = rng.choice((1500, 2000, 2500))
    streams = rng.randint(3, 5)
    glob = rng.randint(5, 7)
    prompt = "Write a haiku about the sea."
    return [
        Burst(
            "requests",
            {"sk-br": Limits(**{**big, "rpm": rpm})},
            (Traffic("sk-br", sessions=40, requests=1, max_tokens=4, prompt=prompt, stop_s=0.3),),
            cut_after_s=1.5,
        ),  # fmt: skip
        Burst(
            "tokens",
            {"sk-bt": Limits(**{**big, "tpm": tpm})},
            (Traffic("sk-bt", sessions=30, requests=1, max_tokens=200, prompt=prompt, stop_s=0.3),),
            cut_after_s=1.5,
        ),  # fmt: skip
        Burst(
            "streams",
            {"sk-bs": Limits(**{**big, "max_streams": streams})},
            (Traffic("sk-bs", sessions=30, requests=1, max_tokens=150, prompt=prompt, stop_s=0.3),),
            cut_after_s=1.5,
        ),  # fmt: skip
        Burst(
            "global",
            {f"sk-bg{i}": Limits(**{**big, "max_global": glob}) for i in range(3)},
            tuple(
                Traffic(
                    f"sk-bg{i}", sessions=10, requests=1, max_tokens=150, prompt=prompt, stop_s=0.3
                )
                for i in range(3)
            ),
            cut_after_s=1.5,
        ),  # fmt: skip
    ]


def burst_bound(burst: Burst) -> int:
    """The most a burst's clients may get in, all sent within well under a second."""
    prompt = len(burst.traffics[0].prompt.encode())
    plan = next(iter(burst.keys.values()))
    if burst.name == "requests":
        return plan.rpm + 1  # a second of refill at most
    if burst.name == "tokens":
        cost = prompt + burst.traffics[0].max_tokens
        return plan.tpm // cost + 1
    if burst.name == "streams":
        return plan.max_streams
    return plan.max_global


# ---- interviewer material -------------------------------------------------------------------
def answer_key(seed: int) -> dict:
    v = scenario.variant(seed)
    return {
        "heavy": v.heavy,
        "how": v.how,
        "busiest_by_requests": v.chatty,
        "heavy_traffic": v.heavy_traffic.describe(),
        "plan": v.plan,
        "written_logs": {k: diagnose(c) for k, c in cases(seed).items()},
    }


def expected(seed: int) -> dict:
    v = scenario.variant(seed)
    what = ("a few requests each asking for nearly the whole context (max_tokens "
            f"{v.heavy_traffic.max_tokens}): each holds KV cache for its whole answer, the "
            "cache fills, the engine preempts and queues everyone"
            if v.how == "max_tokens" else
            f"{v.heavy_traffic.sessions} requests at once (max_tokens "
            f"{v.heavy_traffic.max_tokens}): the batch fills with its streams, the others "
            "queue behind them")  # fmt: skip
    return {
        "the page": "every customer's TTFT p95 jumps from tens of ms to seconds; no 429s; "
        "every key is within its requests-per-minute plan",
        "who": f"{v.heavy}, with a few requests; not {v.chatty}, which sends the most",
        "how": what,
        "evidence": "the access log: the heavy key's share of completion_tokens (most of "
        "them) and its peak responses in flight; the engine's KV cache use near 1.0, "
        "num_requests_waiting > 0 and preemptions only while it is in",
        "a passing fix": f"admit checks requests (rpm {v.plan.rpm}), tokens (tpm "
        f"{v.plan.tpm}, charged prompt + max_tokens), streams per key "
        f"({v.plan.max_streams}) and in all ({v.plan.max_global}) in one Lua script, "
        "charges nothing when it refuses, Retry-After from the longest wait; settle refunds "
        "the unused tokens and frees both stream counters, never below zero",
    }


RUBRIC = {
    "diagnosis": {
        "strong": "Looks past request counts: finds the key that holds most of the generated "
        "tokens and the responses in flight, ties it to the engine's KV cache, waiting queue "
        "and preemptions in the same window, and says whether it is long answers or many at "
        "once, with numbers from this run.",
        "adequate": "Finds the right key from the access log but cannot say what it did to "
        "the engine, or names the mechanism without numbers.",
        "weak": "Blames the key with the most requests, the engine's speed, or asks for more "
        "GPUs; or lowers everyone's requests per minute.",
    },
    "fix": {
        "strong": "One atomic Lua script per decision: requests, tokens reserved at "
        "prompt + max_tokens and refunded on settle, streams per key and globally; refusals "
        "charge nothing and carry Retry-After; holds under two gateway replicas.",
        "adequate": "Adds a token or stream limit but charges on refusal, never refunds, or "
        "checks and charges in separate round trips (over-admits under concurrency).",
        "weak": "Lowers rpm, blocks the customer, or keeps counters in each gateway's memory.",
    },
    "reasoning": {
        "strong": "Explains why an LLM request's cost is unknown at admission (reserve then "
        "refund), why concurrency and KV cache are the scarce resource, why the check and the "
        "charge must be one atomic step across replicas, and what 429 + Retry-After asks of "
        "clients; mentions priority/fair scheduling in the engine as the next layer.",
        "adequate": "Knows rate limits should count tokens but not why atomicity or refunds "
        "matter.",
        "weak": "Treats requests per minute as the measure of load.",
    },
}
