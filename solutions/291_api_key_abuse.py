# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 291 - One API key slows everyone down
#
# Your hosted LLM API puts a gateway in front of its engine: it checks each customer's API key
# and its plan's limits, kept in Redis, then relays the stream. This afternoon every customer's
# time to first token went from tens of milliseconds to seconds, no customer is over its plan,
# and nothing was deployed. You will reproduce it with the real stack (a real `redis-server`,
# the gateway, a vLLM-compatible engine), find from the gateway's access log which customer
# hurts the others and how, write the limits that stop it as Lua scripts Redis runs
# atomically, and prove it by measurement. About 40 minutes; the code runs in about 2 minutes.

# %%
from labsupport import device, session
from labsupport.scenarios import api_key_abuse as scenario

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("291", seed=SEED)
variant = scenario.variant(SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="optional",
    stand_in="the engine is the labs' tiny model on the CPU, each step paced to at least "
    f"{scenario.STEP_MS} ms as a GPU step takes its time, with a KV cache of "
    f"{scenario.BLOCKS} blocks of 16 tokens; Redis and the gateway are the real thing",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV2 - api: TTFT p95 > 1 s for all customers** (15:12 UTC)
# >
# > | panel | value |
# > |---|---|
# > | TTFT p95, all keys | 60 ms until 15:05, then 1-3 s |
# > | requests per second at the gateway | flat, nothing unusual |
# > | 429s | none: every key is within its plan |
# > | engine pods | healthy, no errors, no restarts |
# > | deploys today | none |
# >
# > Support: three enterprise customers report slow answers. "Did someone exceed their rate
# > limit?" - the gateway says no.
#
# The gateway admits a request when the key's plan allows it (the limits live in Redis, so
# every gateway replica sees the same counts). Nobody is over their plan. What, then, fills
# the engine?

# %% [markdown]
# ## 2. Reproduce
#
# The customers of this variant and how they use the API (one more starts a little into
# the busy round):

# %%
from labsupport.scenarios.api_key_abuse import evidence, plots, runs
from labsupport.scenarios.api_key_abuse.production import PRODUCTION

print(variant.describe())
print("every key's plan:", variant.plan)

# %% [markdown]
# The stack runs for real: `redis-server` on a loopback port, the engine (`srelab serve`,
# the same OpenAI-compatible server and `vllm:` metrics as the serving labs), and the gateway
# (`labsupport.gateway`) in front of it with the limits as deployed. Two rounds of traffic:
# a quiet one (every customer but one) and a busy one (everyone). Redis is emptied before
# each round, so every key starts with its full allowance.

# %%
incident = runs.incident(variant, SCALE)
for label, rnd in incident.rounds.items():
    print(f"--- {label} round: {rnd.round_s:g} s, {rnd.summary()}")
    print(evidence.per_key(rnd))
    print(evidence.engine(rnd))

# %%
from labsupport import plots as lab_plots

_ = lab_plots.show(plots.rounds(incident.rounds))

# %% [markdown]
# Every customer's requests wait for their first token while the engine's cache fills up.
# The limits as deployed (a Lua script Redis runs for every request):

# %%
print(PRODUCTION.admit)

# %% [markdown]
# ## 3. Diagnose
#
# The gateway logs every response: key, status, when it started and ended, the prompt's
# tokens, the `max_tokens` asked for, the completion tokens relayed, its time to first token:

# %%
log = evidence.access_view(incident.rounds["busy"])
for row in log[:5]:
    print(row)
print(f"... {len(log)} responses in the busy round")

# %% [markdown]
# **Exercise 1 (graded).** From the access log alone, which key hurts the others, and how?
# `hint("291", 1, "find_heavy_key")` (up to 3) gives a hint and notes it in your transcript.


# %% tags=["exercise"]
def find_heavy_key(log: list[dict]) -> dict:
    """The key whose responses cost the engine the most, how, and the evidence.

    `log` holds one dict per response (evidence.LOG_FIELDS: start_s, end_s, key, status,
    prompt_tokens, max_tokens, completion_tokens, ttft_ms); only status 200 was served.
    Return {"key": ..., "how": ..., "token_share": ..., "peak_streams": ...}:
    - key: the key with the largest share of all completion tokens served;
    - token_share: that share (0 to 1);
    - peak_streams: the most of that key's responses served at the same moment (one that
      ends exactly when another starts does not overlap it);
    - how: "streams" when its peak_streams is at least 5 times the largest peak of any other
      key, else "max_tokens".
    """
    # BEGIN SOLUTION
    served = [r for r in log if r["status"] == 200]
    total = sum(r["completion_tokens"] for r in served) or 1
    tokens: dict = {}
    for r in served:
        tokens[r["key"]] = tokens.get(r["key"], 0) + r["completion_tokens"]

    def peak(key: str) -> int:
        events = sorted([(r["start_s"], 1) for r in served if r["key"] == key]
                        + [(r["end_s"], -1) for r in served if r["key"] == key])  # fmt: skip
        level = most = 0
        for _, step in events:
            level += step
            most = max(most, level)
        return most

    key = max(sorted(tokens), key=tokens.get)
    others = max((peak(k) for k in tokens if k != key), default=0)
    mine = peak(key)
    how = "streams" if mine >= 5 * max(1, others) else "max_tokens"
    return {"key": key, "how": how, "token_share": tokens[key] / total, "peak_streams": mine}
    # END SOLUTION


# %%
found = find_heavy_key(log)
print(found)

# %% [markdown]
# Grade the diagnosis: the check runs your function on written logs whose answers are known
# and on the access log of a busy round it plays itself (the limit checks fail until you
# write the scripts in section 4):

# %%
from labsupport import check

check("291")

# %% [markdown] tags=["reveal"]
# **What happened.** Each key's responses in time, the heavy one highlighted:

# %% tags=["reveal"]
_ = lab_plots.show(plots.streams_by_key(incident.rounds["busy"], highlight=found["key"]))
print(f"busiest key by requests: {variant.chatty}; the one that hurts: {found['key']}")

# %% [markdown] tags=["reveal"]
# - The deployed limiter counts requests per minute, and only that. An LLM request's cost to
#   the engine is not one unit: it is its tokens (prompt + answer), and while it streams it
#   holds a slot in the batch and KV cache for every token so far.
# - The heavy key sends few requests, well within its requests-per-minute plan. Either they
#   ask for nearly the whole context each (`max_tokens`), so each holds KV cache for its whole
#   answer, or it opens many at once. Either way the engine's cache fills
#   (`vllm:kv_cache_usage_perc` near 1), new requests wait (`vllm:num_requests_waiting`), and
#   running ones are preempted and recomputed (`vllm:num_preemptions_total`): everyone's first
#   token waits behind it.
# - The busiest key by request count is a red herring: many short requests cost little.
#
# The fix is to limit what a request costs: tokens per minute (charged at admission for the
# whole possible answer, since its length is unknown, and refunded at the end), and
# responses in flight per key and in all.

# %% [markdown]
# ## 4. Fix
#
# The gateway runs two scripts in Redis (`labsupport.gateway.limits` documents the contract):
# `admit` before a request goes to the engine, `settle` once its response has ended, however
# it ended (finished, failed, client gone). Both get:
#
# ```
# KEYS[1] rl:{KEY}:requests   KEYS[2] rl:{KEY}:tokens
# KEYS[3] rl:{KEY}:streams    KEYS[4] rl:global:streams
# ARGV[1] now_ms  ARGV[2] rpm  ARGV[3] tpm  ARGV[4] max_streams  ARGV[5] max_global
# ARGV[6] tokens (admit: prompt + max_tokens; settle: what admit charged)
# ARGV[7] used (settle only: prompt + tokens generated)
# ```
#
# `admit` returns `{1, 0, "ok"}` or `{0, retry_after_ms, reason}` (the gateway answers 429
# with `Retry-After`). Redis runs each script atomically: no other command runs in between, so
# two gateway replicas cannot both take the last unit.
#
# **Exercise 2 (graded).** Write both scripts. `hint("291", 1, "admit_script")` and
# `hint("291", 1, "settle_script")` if you want one.


# %% tags=["exercise"]
def admit_script() -> str:
    """The admit script (Lua): refuse when the key is out of requests (rpm) or tokens (tpm,
    charged the request's whole possible cost ARGV[6]), or has max_streams responses in
    flight, or all keys have max_global in flight; a refusal changes nothing and returns
    {0, retry_after_ms, reason}: the wait until the buckets allow it (at least 1000 ms when a
    count of responses in flight refused it). Otherwise charge all four and return
    {1, 0, "ok"}. Buckets refill continuously, a minute's worth per minute, never above it.
    """
    # BEGIN SOLUTION
    return """\
local now = tonumber(ARGV[1])
local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
local max_streams, max_global = tonumber(ARGV[4]), tonumber(ARGV[5])
local cost = tonumber(ARGV[6])

-- a bucket of `size` per minute, refilled continuously since it was last written
local function level(key, size)
  local saved = redis.call("HMGET", key, "level", "at")
  local held = tonumber(saved[1]) or size
  local at = tonumber(saved[2]) or now
  return math.min(size, held + math.max(0, now - at) * size / 60000)
end

local requests = level(KEYS[1], rpm)
local tokens = level(KEYS[2], tpm)
local streams = tonumber(redis.call("GET", KEYS[3]) or "0")
local everyone = tonumber(redis.call("GET", KEYS[4]) or "0")

-- decide on all four first: a refused request changes nothing
local wait, reason = 0, nil
if requests < 1 then
  wait, reason = math.max(wait, (1 - requests) * 60000 / rpm), "requests per minute"
end
if tokens < cost then
  wait = math.max(wait, (cost - tokens) * 60000 / tpm)
  reason = reason or "tokens per minute"
end
if streams >= max_streams then
  wait, reason = math.max(wait, 1000), reason or "streams in flight"
end
if everyone >= max_global then
  wait, reason = math.max(wait, 1000), reason or "streams in flight, all keys"
end
if reason then
  return {0, math.ceil(wait), reason}
end

redis.call("HSET", KEYS[1], "level", requests - 1, "at", now)
redis.call("HSET", KEYS[2], "level", tokens - cost, "at", now)
redis.call("PEXPIRE", KEYS[1], 120000)
redis.call("PEXPIRE", KEYS[2], 120000)
redis.call("INCR", KEYS[3])
redis.call("INCR", KEYS[4])
return {1, 0, "ok"}
"""
    # END SOLUTION


def settle_script() -> str:
    """The settle script (Lua): give back to the key's token bucket what admit charged and
    the response did not use (ARGV[6] - ARGV[7]), never above a minute's worth, and free the
    key's and everyone's count of responses in flight (never below zero)."""
    # BEGIN SOLUTION
    return """\
local now = tonumber(ARGV[1])
local tpm = tonumber(ARGV[3])
local refund = math.max(0, tonumber(ARGV[6]) - tonumber(ARGV[7]))

local saved = redis.call("HMGET", KEYS[2], "level", "at")
local held = tonumber(saved[1]) or tpm
local at = tonumber(saved[2]) or now
local level = math.min(tpm, held + math.max(0, now - at) * tpm / 60000 + refund)
redis.call("HSET", KEYS[2], "level", level, "at", now)
redis.call("PEXPIRE", KEYS[2], 120000)

for i = 3, 4 do
  if tonumber(redis.call("GET", KEYS[i]) or "0") > 0 then
    redis.call("DECR", KEYS[i])
  end
end
return 0
"""
    # END SOLUTION


# %% [markdown]
# Try them call by call with a given clock before they meet traffic (`replay` starts its own
# Redis): a plan of 2 requests per minute, 1000 tokens per minute and 1 response in flight.

# %%
from labsupport.gateway.limits import Limits
from labsupport.scenarios.api_key_abuse.production import Scripts
from labsupport.scenarios.api_key_abuse.replay import Call, replay

yours = Scripts(admit_script(), settle_script(), "yours")
plan = Limits(rpm=2, tpm=1000, max_streams=1, max_global=10)
calls = [
    Call("admit", "sk-demo", plan, 0, tokens=600),
    Call("admit", "sk-demo", plan, 10, tokens=300),
    Call("settle", "sk-demo", plan, 500, tokens=600, used=200),
    Call("admit", "sk-demo", plan, 600, tokens=700),
]
for call, answer in zip(calls, replay(yours, calls), strict=True):
    print(f"{call.op:<7} t={call.now_ms:>4} ms tokens={call.tokens:<4} -> {answer}")

# %%
check("291")

# %% [markdown]
# ## 5. Verify
#
# One stack, the same customers: a quiet round and a busy round with your scripts, then the
# busy round again with the deployed ones, on the same engine.

# %%
result = runs.compare(variant, yours, SCALE)
_ = lab_plots.show(plots.rounds(result.rounds))
for label, rnd in result.rounds.items():
    print(f"--- {label}: {rnd.summary()}")
    print(evidence.per_key(rnd, since_s=variant.heavy_starts_s if label != "quiet" else 0.0))

# %%
from labsupport import headline

before = result.victims_p95_ms("busy, as deployed")
after = result.victims_p95_ms("busy")
_ = headline.record(
    "291",
    metric="other customers' p95 TTFT while one key sends its traffic",
    before=before,
    after=after,
    unit="ms",
    seed=SEED,
    quiet_ms=result.victims_p95_ms("quiet"),
    heavy=variant.heavy,
    device=device.device_name(),
    engine_device=result.device,
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** One customer, within its rate limit, makes the API slow for
# everyone. What is going on and what do you change?
#
# **Model answer.** The limiter counts requests, and an LLM request is not a unit of work:
# its cost is its tokens, and while it streams it holds a batch slot and KV cache. One key
# asking for very long answers, or opening many streams at once, fills the engine's KV cache
# (`vllm:kv_cache_usage_perc` near 1, `vllm:num_requests_waiting` > 0, preemptions) and
# everyone's first token waits. I find it from the gateway's access log: share of
# completion tokens per key and peak responses in flight, against the engine's metrics in the
# same window. Then I limit what requests cost: tokens per minute charged at admission for
# the worst case (prompt + `max_tokens`, since the answer's length is unknown) and refunded
# when the response ends, a cap on responses in flight per key and in all, and requests per
# minute kept. Decision and charge happen in one Lua script, which Redis runs atomically, so
# replicas cannot over-admit; a refusal charges nothing and carries `Retry-After`.
#
# **Where the classic answer is incomplete.** "Add a tokens-per-minute limit" leaves out:
#
# - **When to charge.** At admission the answer's length is unknown: reserve `max_tokens`,
#   refund the unused part in settle, or a key can run far past its budget (charging only at
#   the end lets a burst of long requests in at once).
# - **Concurrency is its own limit.** A token budget per minute still lets one key start all
#   of it at once; the engine's scarce resource is slots and KV cache *now*: cap streams in
#   flight, and free them when the response ends however it ends (a client that hangs up, an
#   engine error) - and never below zero, or a double settle opens the gate.
# - **Atomicity across replicas.** GET-then-SET from each gateway over-admits under
#   concurrency; a Lua script (or a single `INCR` with a check) is one atomic step. Counters
#   in each gateway's memory multiply the limit by the number of replicas.
# - **Clients must back off.** 429 with `Retry-After` (whole seconds) from the longest wait;
#   OpenAI's API sends `x-ratelimit-*` headers so clients can pace themselves.
# - **The engine's own fairness.** Limits at the door do not schedule what is admitted:
#   vLLM's priority scheduling and a per-request `max_tokens` cap (`--max-model-len`) are the
#   next layer.
#
# **Follow-up questions an interviewer asks.**
#
# - What happens to the streams counters when a gateway replica crashes mid-stream? (They
#   leak; use per-request entries with an expiry, e.g. a sorted set by deadline.)
# - Why not simply lower everyone's requests per minute? (It does not bound cost per
#   request, and it hurts the customers who did nothing wrong.)
# - Redis Cluster: why do the keys carry `{KEY}`? (A hash tag: a script's keys must live in
#   one slot; the global counter is the exception and needs its own design there.)
# - How would you size tpm and max_streams? (From the engine's KV cache: tokens it holds at
#   once, divided among the plans you sell, with headroom.)
#
# **References.**
#
# - Redis, scripting with Lua: "Redis guarantees the script's atomic execution ... all server
#   activities are blocked during its entire runtime": https://redis.io/topics/eval-intro ;
#   `EVAL` and why every key a script touches is passed in KEYS (Redis Cluster):
#   https://redis.io/docs/latest/commands/eval/
# - OpenAI API rate limits (requests and tokens per minute; the token estimate of a request
#   counts its `max_tokens`): https://platform.openai.com/docs/guides/rate-limits
# - HTTP 429 Too Many Requests, RFC 6585: https://www.rfc-editor.org/rfc/rfc6585#section-4 ;
#   `Retry-After`, RFC 9110: https://www.rfc-editor.org/rfc/rfc9110#field.retry-after
# - vLLM production metrics (`vllm:kv_cache_usage_perc`, `vllm:num_requests_waiting`,
#   `vllm:num_preemptions_total`): https://docs.vllm.ai/en/stable/usage/metrics/
# - vLLM preemption when the KV cache cannot hold every running request (recomputed later,
#   at a cost in latency): https://docs.vllm.ai/en/stable/configuration/optimization/
