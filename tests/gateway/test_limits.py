import asyncio

import pytest

from labsupport.gateway import redisd
from labsupport.gateway.limits import (
    GLOBAL_STREAMS_KEY,
    Admission,
    AsyncScriptLimiter,
    Limits,
    ScriptLimiter,
    args_for,
    keys_for,
    parse_reply,
)
from labsupport.gateway.redisd import redis_server

pytestmark = pytest.mark.skipif(not redisd.available(), reason="redis-server is not installed")

# Admits up to rpm requests in all (no refill) and records every call's KEYS and ARGV.
COUNTING = """\
redis.call("RPUSH", "calls", cjson.encode({KEYS, ARGV}))
local n = redis.call("INCR", KEYS[1])
if n > tonumber(ARGV[2]) then
  redis.call("DECR", KEYS[1])
  return {0, 1500, "requests per minute"}
end
return {1, 0, "ok"}
"""
RECORD_SETTLE = 'redis.call("RPUSH", "settled", cjson.encode({KEYS, ARGV})); return 0'


@pytest.fixture(scope="module")
def store():
    with redis_server() as s:
        yield s


@pytest.fixture
def client(store):
    c = store.client()
    c.flushall()
    yield c
    c.close()


def test_keys_and_arguments_are_what_the_module_documents():
    assert keys_for("sk-a") == ["rl:{sk-a}:requests", "rl:{sk-a}:tokens", "rl:{sk-a}:streams",
                                GLOBAL_STREAMS_KEY]  # fmt: skip
    plan = Limits(rpm=2, tpm=300, max_streams=3, max_global=9)
    assert args_for(plan, 1234.9, 50) == [1234, 2, 300, 3, 9, 50]
    assert args_for(plan, 1, 50, used=20) == [1, 2, 300, 3, 9, 50, 20]


def test_admit_decides_in_redis_and_settle_gets_what_was_charged_and_used(client):
    import json

    limiter = ScriptLimiter(client, COUNTING, RECORD_SETTLE)
    plan = Limits(rpm=2, tpm=300, max_streams=3, max_global=9)
    got = [limiter.admit("sk-a", plan, cost=40, now_ms=1000 + i) for i in range(3)]
    assert [a.admitted for a in got] == [True, True, False]
    assert got[2] == Admission(False, 1500, "requests per minute")
    assert got[2].retry_after_s == 2  # whole seconds, rounded up
    assert limiter.admit("sk-b", plan, cost=40, now_ms=2000).admitted  # its own budget
    assert limiter.settle("sk-a", plan, reserved=40, used=25, now_ms=3000) is None
    keys, argv = json.loads(client.lrange("settled", 0, -1)[0])
    assert keys == keys_for("sk-a") and argv == ["3000", "2", "300", "3", "9", "40", "25"]
    first = json.loads(client.lrange("calls", 0, -1)[0])
    assert first[1] == ["1000", "2", "300", "3", "9", "40"]


def test_a_flushed_script_cache_is_loaded_again(client):
    limiter = ScriptLimiter(client, COUNTING, RECORD_SETTLE)
    assert limiter.admit("sk-a", Limits(rpm=5), cost=1, now_ms=0).admitted
    client.script_flush()
    assert limiter.admit("sk-a", Limits(rpm=5), cost=1, now_ms=1).admitted
    assert client.get(keys_for("sk-a")[0]) == "2"


def test_a_failing_script_is_a_refusal_with_the_error_not_an_exception(client):
    limiter = ScriptLimiter(client, "return redis.call('NOSUCHCOMMAND')", "error('boom')")
    a = limiter.admit("sk-a", Limits(), cost=1, now_ms=0)
    assert not a.admitted and "the admit script failed" in a.error
    assert "the settle script failed" in limiter.settle("sk-a", Limits(), reserved=1, used=1,
                                                        now_ms=0)  # fmt: skip


@pytest.mark.parametrize(
    "reply, admitted, error",
    [
        ([1, 0, "ok"], True, None),
        ([0, 2500, b"tokens per minute"], False, None),
        ([1], True, None),
        (None, False, "not {1, 0, 'ok'}"),
        ([], False, "not {1, 0, 'ok'}"),
        ([2, 0, "ok"], False, "not 1 or 0"),
        ([True, 0, "ok"], False, "not 1 or 0"),
        ([0, "soon", "x"], False, "not a number"),
    ],
)
def test_a_reply_is_parsed_and_a_malformed_one_refused(reply, admitted, error):
    a = parse_reply(reply)
    assert a.admitted is admitted
    assert (a.error is None) if error is None else (error in a.error)


def test_the_async_limiter_answers_the_same(store, client):
    import redis.asyncio as aioredis

    async def main():
        c = aioredis.from_url(store.url, decode_responses=True)
        limiter = AsyncScriptLimiter(c, COUNTING, RECORD_SETTLE)
        got = [await limiter.admit("sk-a", Limits(rpm=1), cost=3, now_ms=5) for _ in range(2)]
        settled = await limiter.settle("sk-a", Limits(rpm=1), reserved=3, used=2, now_ms=6)
        await c.aclose()
        return got, settled

    got, settled = asyncio.run(main())
    assert [a.admitted for a in got] == [True, False] and settled is None
    assert client.llen("settled") == 1
