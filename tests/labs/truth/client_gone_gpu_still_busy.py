"""Lab 286's reference answers: where the engine is let go on, for whom, at what cost; the rubric.

    >>> from tests.labs.truth import client_gone_gpu_still_busy as truth
    >>> before, after, log = truth.HAND_MADE
    >>> truth.answer(before, after, log)
    {'lost_at': 'gateway', 'clients_left': 2, 'tokens_for_nobody': 190}
    >>> truth.answer_key(0)["lost_at"], truth.answer_key(1)["lost_at"]
    ('server', 'gateway')

Never part of the package: a candidate with `labsupport` installed cannot import the rule that
grades them. The diagnosis checks of tests/labs/test_286_client_gone_gpu_still_busy.py compare
the learner's `diagnose(metrics_before, metrics_after, gateway_log)` with `answer(...)` on
written evidence (`cases(seed)`: each layer at fault, a healthy stack, nobody leaving, counters
that did not start at zero, built so that the usual near misses give other answers) and on
rounds of this run (the variant's incident, the other layer at fault, a healthy stack).

What the answer means:
- `clients_left`: clients that closed their connection before their answer was complete, as
  the gateway logged them (status 499). The server's own count is a near miss: it sees nothing
  when the gateway never tells it.
- `tokens_for_nobody`: tokens the engine generated between the two scrapes that no client
  received: the increase of `vllm:generation_tokens_total` minus what the gateway wrote to its
  clients. The server's `srelab:wasted_decode_steps_total` is a near miss: it only counts what
  the server knew to be wasted.
- `lost_at`: "gateway" when clients left and the server never saw them go (its disconnect
  counter did not move, the gateway read their answers on to the end); "server" when it saw
  them go and the engine still worked on for them (nothing ended as aborted, their tokens kept
  coming); "nowhere" when no client left, or when each request of a client that left ended
  within a step or two.
"""

from __future__ import annotations

import random

from labsupport.scenarios import client_gone_gpu_still_busy as scenario
from labsupport.serving.metrics import metric_value

LOST_AT = ("gateway", "server", "nowhere")
COMPLETIONS = "POST /v1/completions"

# ---- written evidence -------------------------------------------------------------------
_FAMILIES = [
    ("vllm:num_requests_running", "gauge", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed."),
    ("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage."),
    ("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed."),
    ("vllm:generation_tokens_total", "counter", "Number of generation tokens processed."),
    ("vllm:request_success_total", "counter", "Count of successfully processed requests."),
    ("srelab:engine_steps_total", "counter", "Engine steps (iterations that ran the model)."),
    (
        "srelab:wasted_decode_steps_total",
        "counter",
        "Tokens computed for requests whose client had already gone (request-steps).",
    ),
    ("srelab:kv_cache_blocks_used", "gauge", "KV-cache blocks held by requests."),
    ("srelab:http_requests_in_flight", "gauge", "Completion requests being served."),
]
_REASONS = ("stop", "length", "abort", "error", "repetition")
_LABELS = 'engine="0",model_name="srelab-tiny"'


def scrape(v: dict) -> str:
    """A /metrics text as the server writes it, for the values in `v` (missing: 0)."""
    lines = [
        "# HELP srelab:client_disconnects_total Clients that went away before their request "
        "finished.",
        "# TYPE srelab:client_disconnects_total counter",
        f"srelab:client_disconnects_total {float(v.get('disconnects', 0))}",
    ]
    keys = {
        "vllm:num_requests_running": "running",
        "vllm:num_requests_waiting": "waiting",
        "vllm:kv_cache_usage_perc": "kv_usage",
        "vllm:prompt_tokens_total": "prompt",
        "vllm:generation_tokens_total": "generation",
        "srelab:engine_steps_total": "steps",
        "srelab:wasted_decode_steps_total": "wasted",
        "srelab:kv_cache_blocks_used": "blocks",
        "srelab:http_requests_in_flight": "in_flight",
    }
    for name, kind, text in _FAMILIES:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        if name == "vllm:request_success_total":
            for reason in _REASONS:
                n = float(v.get(f"finished_{reason}", 0))
                lines.append(
                    f'{name}{{engine="0",finished_reason="{reason}",model_name="srelab-tiny"}} {n}'
                )
        else:
            lines.append(f"{name}{{{_LABELS}}} {float(v.get(keys[name], 0))}")
    return "\n".join(lines) + "\n"


def _entry(request: str, status: int, to_client: int, from_upstream: int) -> dict:
    return {
        "request": request,
        "status": status,
        "upstream_status": 200,
        "tokens_from_upstream": from_upstream,
        "tokens_to_client": to_client,
        "request_time_s": 0.0,
    }


def written(kind: str, w, base: dict, rng: random.Random) -> tuple[str, str, list]:
    """Evidence of one round of workload `w` on a server whose counters start at `base`.

    kind: "gateway" (the gateway reads on, the server never hears), "server" (the server hears,
    the engine works on to max_tokens), "nowhere" (every layer stops within a step or two).
    """
    after = dict(base)
    log = [_entry("GET /v1/models", 200, 0, 0)]
    generated = 0
    leaving = w.leaving if kind != "nobody" else 0
    for _ in range(leaving):
        sent = w.leave_after_tokens + rng.randint(0, 1)
        if kind == "gateway":
            upstream, made = w.leaving_max_tokens, w.leaving_max_tokens
        elif kind == "server":
            upstream, made = sent + rng.randint(0, 1), w.leaving_max_tokens
        else:
            upstream = sent + rng.randint(0, 1)
            made = upstream + rng.randint(0, 2)
        log.append(_entry(COMPLETIONS, 499, sent, upstream))
        generated += made
    for _ in range(w.staying):
        log.append(_entry(COMPLETIONS, 200, w.staying_max_tokens, w.staying_max_tokens))
        generated += w.staying_max_tokens
    rng.shuffle(log)
    n = leaving + w.staying
    after["generation"] = base.get("generation", 0) + generated
    after["prompt"] = base.get("prompt", 0) + 9 * n
    after["steps"] = base.get("steps", 0) + w.leaving_max_tokens + 2
    after["finished_length"] = base.get("finished_length", 0) + w.staying
    if kind in ("gateway", "server"):
        after["finished_length"] += leaving
    if kind == "nowhere":
        after["finished_abort"] = base.get("finished_abort", 0) + leaving
    if kind in ("server", "nowhere"):
        after["disconnects"] = base.get("disconnects", 0) + leaving
    if kind == "server":
        after["wasted"] = base.get("wasted", 0) + leaving * (w.leaving_max_tokens - 6)
    elif kind == "nowhere":
        after["wasted"] = base.get("wasted", 0) + leaving
    for gauge in ("running", "waiting", "in_flight", "blocks", "kv_usage"):
        after[gauge] = 0
    return scrape(base), scrape(after), log


# A round written by hand, answer known: 2 clients left after 5 tokens of 100, the gateway read
# both answers to the end; 1 client read its 10 tokens. 2 x 100 + 10 - (2 x 5 + 10) = 190.
HAND_MADE = (
    scrape({"generation": 1000, "disconnects": 3, "finished_length": 20, "finished_abort": 3}),
    scrape({"generation": 1210, "disconnects": 3, "finished_length": 23, "finished_abort": 3}),
    [
        _entry(COMPLETIONS, 499, 5, 100),
        _entry(COMPLETIONS, 200, 10, 10),
        _entry(COMPLETIONS, 499, 5, 100),
    ],
)
HAND_MADE_LOST_AT = "gateway"


def cases(seed: int) -> dict[str, tuple[str, tuple[str, str, list]]]:
    """Written evidence for the checks: label -> (lost_at by construction, evidence)."""
    rng = random.Random(f"286-cases/{seed}")
    w = scenario.variant(seed).workload
    other = scenario.variant(seed + 1000).workload
    fresh: dict = {}
    busy = {  # a server that has run for days: counters far from zero, aborts in its past
        "generation": 1_234_567,
        "prompt": 98_765,
        "steps": 55_555,
        "finished_length": 4321,
        "finished_abort": 77,
        "disconnects": 80,
        "wasted": 9_876,
    }
    return {
        "a fresh server, clients leaving": ("server", written("server", w, fresh, rng)),
        "a busy server, clients leaving": ("gateway", written("gateway", w, busy, rng)),
        "a busy server, other clients leaving": ("server", written("server", other, busy, rng)),
        "a fresh server, other clients leaving": ("gateway", written("gateway", other, fresh, rng)),
        "a busy server whose requests end as clients leave": (
            "nowhere",
            written("nowhere", w, busy, rng),
        ),
        "a busy server, nobody leaving": ("nowhere", written("nobody", w, busy, rng)),
    }


# ---- the reference answer -----------------------------------------------------------------
def _gained(before: str, after: str, name: str, **labels: str) -> float:
    return (metric_value(after, name, **labels) or 0.0) - (
        metric_value(before, name, **labels) or 0.0
    )


def clients_left(log: list) -> int:
    return sum(e["status"] == 499 for e in log)


def tokens_for_nobody(before: str, after: str, log: list) -> int:
    generated = _gained(before, after, "vllm:generation_tokens_total")
    return int(round(generated - sum(e["tokens_to_client"] for e in log)))


def lost_at(before: str, after: str, log: list) -> str:
    left = clients_left(log)
    if not left:
        return "nowhere"
    if _gained(before, after, "srelab:client_disconnects_total") < left:
        return "gateway"
    aborted = _gained(before, after, "vllm:request_success_total", finished_reason="abort")
    return "nowhere" if aborted >= left else "server"


def answer(before: str, after: str, log: list) -> dict:
    """What `diagnose(before, after, log)` must return."""
    return {
        "lost_at": lost_at(before, after, log),
        "clients_left": clients_left(log),
        "tokens_for_nobody": tokens_for_nobody(before, after, log),
    }


def near_misses(before: str, after: str, log: list) -> dict[str, dict]:
    """Answers a learner gets from the usual wrong readings, by what each reading is."""
    left_server = int(_gained(before, after, "srelab:client_disconnects_total"))
    generated = _gained(before, after, "vllm:generation_tokens_total")
    to_client = sum(e["tokens_to_client"] for e in log)
    gone = [e for e in log if e["status"] == 499]
    return {
        "the server's own count of clients that left": {"clients_left": left_server},
        "the server's wasted-steps counter": {
            "tokens_for_nobody": int(_gained(before, after, "srelab:wasted_decode_steps_total"))
        },
        "what the gateway read from the server but did not pass on": {
            "tokens_for_nobody": int(
                sum(e["tokens_from_upstream"] - e["tokens_to_client"] for e in log)
            )  # fmt: skip
        },
        "the generated tokens minus what only the clients that left received": {
            "tokens_for_nobody": int(generated - sum(e["tokens_to_client"] for e in gone))
        },
        "the counters of the second scrape alone (they are cumulative)": {
            "tokens_for_nobody": int(
                (metric_value(after, "vllm:generation_tokens_total") or 0) - to_client
            )  # fmt: skip
        },
    }


# ---- the variant's ground truth, for the interviewer ----------------------------------------
def answer_key(seed: int) -> dict:
    """The graded ground truth of seed `seed`'s incident (tokens: within a few per client)."""
    v = scenario.variant(seed)
    w = v.workload
    return {
        "lost_at": "server" if v.gateway == "close" else "gateway",
        "clients_left": w.leaving,
        "tokens_for_nobody_about": w.leaving * (w.leaving_max_tokens - w.leave_after_tokens),
    }


def expected(seed: int) -> dict:
    """What the interviewer should see in seed `seed`'s incident, layer by layer."""
    v = scenario.variant(seed)
    w = v.workload
    gateway_reads_on = v.gateway == "read"
    key = answer_key(seed)
    generated = w.leaving * w.leaving_max_tokens + w.staying * w.staying_max_tokens
    received = w.leaving * w.leave_after_tokens + w.staying * w.staying_max_tokens
    return {
        "workload": w.describe(),
        "gateway log: status 499 (client closed request)": w.leaving,
        "gateway log: tokens read from the server per 499": (
            w.leaving_max_tokens if gateway_reads_on else f"{w.leave_after_tokens} or one more"
        ),
        "server: increase of srelab:client_disconnects_total": 0 if gateway_reads_on else w.leaving,
        "server: srelab:http_requests_in_flight right after the last client": (
            w.leaving if gateway_reads_on else 0
        ),
        "engine: vllm:num_requests_running right after the last client": w.leaving,
        "engine: requests that ended as aborted": 0,
        "engine: vllm:generation_tokens_total increase": generated,
        "clients received (tokens)": received,
        "generated per token received": round(generated / received, 1),
        "answer": key,
        "fix": (
            "stream_outputs aborts the engine request on CancelledError and GeneratorExit and "
            "re-raises"
            + (
                "; the gateway must also close its server connection when its client's closes "
                "(nginx: proxy_ignore_client_abort off)"
                if gateway_reads_on
                else ""
            )
        ),
    }


RUBRIC = {
    "diagnosis": {
        "strong": (
            "Puts the three layers side by side for the clients that left: the gateway's 499s "
            "and the tokens it read from the server for them, the server's disconnect counter "
            "and open streams, the engine's running requests and generated tokens. Names the "
            "layer that lets the engine go on (the gateway reading answers to the end when the "
            "server never counted a disconnect; the server when it counted them and nothing "
            "ended as aborted) and sizes the waste as generated minus received tokens, with "
            "this run's numbers, using counter increases between scrapes."
        ),
        "adequate": (
            "Sees that the engine generates far more than clients receive and that requests "
            "run to max_tokens after their clients left; finds the layer with some prompting, "
            "or reads the server's own wasted-steps counter without checking that the server "
            "knew of the clients leaving."
        ),
        "weak": (
            "Blames load, max_tokens or GPU capacity; reads cumulative counters as totals of "
            "this round; or names a layer without evidence (the server's disconnect counter "
            "and the gateway log never looked at)."
        ),
    },
    "fix": {
        "strong": (
            "stream_outputs wraps the iteration in try/except (asyncio.CancelledError, "
            "GeneratorExit): handle.abort(); raise (or a finally that aborts unfinished "
            "requests), passes the cancel and close probes and the real server with no work "
            "for clients that left, and every token to those that stay; when the gateway reads "
            "on, also has it close the upstream connection (proxy_ignore_client_abort off)."
        ),
        "adequate": (
            "Aborts on one path only (CancelledError or GeneratorExit) and fixes the other "
            "after a failed check; or swallows the CancelledError after aborting."
        ),
        "weak": (
            "except Exception (misses both BaseExceptions), lowers max_tokens, aborts after N "
            "tokens or on a timer, or reads the engine in a background task that outlives the "
            "HTTP request."
        ),
    },
    "reasoning": {
        "strong": (
            "Explains why an engine cannot know about HTTP and who must tell it (the code that "
            "owns the engine request: vLLM's AsyncLLM.generate aborts on CancelledError and "
            "GeneratorExit), why every proxy on the path must pass the hang-up down, that an "
            "abort lands at the next step boundary and must free the KV blocks, and how to "
            "alert on it (engine running requests vs open streams, generated vs delivered "
            "tokens, 499 ratio)."
        ),
        "adequate": (
            "Knows the request must be aborted on disconnect and where; vague on the proxy, "
            "on the two exception paths or on what the alert should compare."
        ),
        "weak": (
            "Thinks the framework or the engine cancels by itself, or that polling "
            "is_disconnected between tokens is enough behind any middleware."
        ),
    },
}
