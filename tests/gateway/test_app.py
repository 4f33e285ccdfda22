import json

import httpx
import psutil
import pytest

from labsupport.gateway import redisd
from labsupport.gateway.clients import Traffic, run
from labsupport.gateway.config import GatewayConfig
from labsupport.gateway.launcher import GatewayStartError, gateway_subprocess, gateways
from labsupport.gateway.limits import Limits
from labsupport.gateway.redisd import redis_server
from labsupport.serving.launcher import serve_subprocess

pytestmark = pytest.mark.skipif(not redisd.available(), reason="redis-server is not installed")

# Admits rpm requests in all per key (no refill); settle records what it was told.
ADMIT = """\
local n = redis.call("INCR", KEYS[1])
if n > tonumber(ARGV[2]) then
  redis.call("DECR", KEYS[1])
  return {0, 1200, "requests per minute"}
end
return {1, 0, "ok"}
"""
SETTLE = 'redis.call("RPUSH", "settled", cjson.encode(ARGV)); return 0'


@pytest.fixture(scope="module")
def engine():
    with serve_subprocess("--min-step-ms", "5") as srv:
        yield srv


@pytest.fixture(scope="module")
def store():
    with redis_server() as s:
        yield s


def _config(engine, store, **kw) -> GatewayConfig:
    keys = {"sk-a": Limits(rpm=3), "sk-b": Limits(rpm=100)}
    return GatewayConfig({"engine": engine.base_url}, keys=keys, redis_url=store.url,
                         admit_lua=ADMIT, settle_lua=SETTLE, **kw)  # fmt: skip


def _stream(c, key, max_tokens=5, leave_after=None):
    body = {"prompt": "Hi there", "max_tokens": max_tokens, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    with c.stream("POST", "/v1/completions", json=body, headers=headers) as r:
        if r.status_code != 200:
            r.read()
            return r, []
        events = []
        for line in r.iter_lines():
            if line.startswith("data: {"):
                events.append(json.loads(line[6:]))
                if leave_after and len(events) >= leave_after:
                    break
        return r, events


def test_keys_limits_relay_and_the_access_log(engine, store):
    redis = store.client()
    redis.flushall()
    with gateway_subprocess(_config(engine, store)) as gw:
        with httpx.Client(base_url=gw.base_url, trust_env=False, timeout=30) as c:
            r, _ = _stream(c, "sk-nobody")
            assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_api_key"
            for _ in range(3):
                r, events = _stream(c, "sk-a", max_tokens=5)
                assert r.status_code == 200 and len(events) == 5
            r, _ = _stream(c, "sk-a")
            assert r.status_code == 429
            assert r.headers["retry-after"] == "2" and r.headers["retry-after-ms"] == "1200"
            assert r.json()["error"]["type"] == "rate_limit_exceeded"
            r, _ = _stream(c, "sk-b", max_tokens=4)  # another key is not limited by sk-a's
            assert r.status_code == 200
            plain = c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 3},
                           headers={"Authorization": "Bearer sk-b"})  # fmt: skip
            assert plain.status_code == 200 and plain.json()["usage"]["completion_tokens"] == 3
            assert c.post("/v1/completions", content=b"[1]",
                          headers={"Authorization": "Bearer sk-b"}).status_code == 400  # fmt: skip
        log = gw.access_log()
        assert gw.access_log_size() == len(log) == 7
        assert len(gw.access_log(since=5)) == 2
    assert [e["status"] for e in log[:6]] == [401, 200, 200, 200, 429, 200]
    ok = log[1]
    assert ok["key"] == "sk-a" and ok["upstream"] == "engine" and ok["ttft_ms"] > 0
    assert (ok["prompt_tokens"], ok["max_tokens"], ok["completion_tokens"]) == (8, 5, 5)
    assert ok["attempts"][0][:2] == ["engine", "ok"] and not ok["client_gone"]
    assert log[4]["retry_after_s"] == 2 and log[4]["reason"] == "requests per minute"
    assert log[6]["completion_tokens"] == 3  # a plain JSON answer: read from its usage
    settled = [json.loads(s) for s in redis.lrange("settled", 0, -1)]
    assert len(settled) == 5  # once per admitted request, never for 401/429
    # ARGV[6]: charged at admission (8 B prompt + max_tokens); ARGV[7]: what it really cost
    assert settled[0][5:] == ["13", "13"] and settled[-1][5:] == ["5", "5"]
    redis.close()


def test_a_client_that_hangs_up_is_settled_with_what_it_got(engine, store):
    redis = store.client()
    redis.flushall()
    with gateway_subprocess(_config(engine, store)) as gw:
        with httpx.Client(base_url=gw.base_url, trust_env=False, timeout=30) as c:
            _, events = _stream(c, "sk-b", max_tokens=200, leave_after=3)
            assert len(events) == 3
        deadline = __import__("time").monotonic() + 10
        while gw.access_log_size() < 1 and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.05)
        entry = gw.access_log()[0]
    assert entry["client_gone"] and 3 <= entry["completion_tokens"] < 200
    reserved, used = json.loads(redis.lrange("settled", 0, -1)[0])[5:]
    assert reserved == "208" and int(used) == 8 + entry["completion_tokens"]
    redis.close()


def test_a_script_that_fails_is_a_500_and_an_unreachable_engine_a_502(engine, store):
    import dataclasses

    broken = dataclasses.replace(_config(engine, store), admit_lua="return {7}")
    with gateway_subprocess(broken) as gw:
        r = httpx.post(gw.base_url + "/v1/completions", json={"prompt": "x"},
                       headers={"Authorization": "Bearer sk-a"}, trust_env=False)  # fmt: skip
        assert r.status_code == 500
        assert "not 1 or 0" in gw.access_log()[0]["reason"]
    gone = GatewayConfig({"engine": "http://127.0.0.1:9"})  # no keys: open, nothing listens
    with gateway_subprocess(gone) as gw:
        r = httpx.post(gw.base_url + "/v1/completions", json={"prompt": "x"}, trust_env=False)
        assert r.status_code == 502 and "upstream engine" in r.json()["error"]["message"]
        assert gw.access_log()[0]["attempts"][0][1] == "error"


def test_replicas_share_the_limits_in_redis_and_clients_see_each_answer(engine, store):
    redis = store.client()
    redis.flushall()
    with gateways(_config(engine, store), replicas=2) as gws:
        assert len(set(gws.urls)) == 2
        pids = [g.pid for g in gws.replicas]
        traffic = [Traffic("sk-a", sessions=6, requests=1, max_tokens=4, stop_s=1.0),
                   Traffic("sk-b", sessions=1, requests=2, max_tokens=4, think_s=0.0)]  # fmt: skip
        results = run(gws.urls, traffic, grace_s=5.0)
        log = gws.access_log()
    assert len(results) == 8 and len(log) == 8
    a = [r for r in results if r.key == "sk-a"]
    assert sorted(r.status for r in a) == [200] * 3 + [429] * 3  # 3 in all, across replicas
    assert all(r.retry_after_s == 2.0 for r in a if r.status == 429)
    assert all(r.outcome == "ok" and r.tokens == 4 and r.ttft_s > 0 for r in results
               if r.status == 200)  # fmt: skip
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
    redis.close()


def test_a_bad_config_fails_to_start_with_its_output():
    with pytest.raises(GatewayStartError, match="gateway exited"):
        with gateway_subprocess("not a config"):
            pass


def test_traffic_describes_itself_and_bounds_the_sessions():
    t = Traffic("sk-a", sessions=2, max_tokens=24, think_s=0.2, stop_s=3.0)
    assert t.describe().startswith("sk-a: 2 sessions, max_tokens 24")
    with pytest.raises(ValueError, match="sessions"):
        run(["http://127.0.0.1:9"], [Traffic("sk-a", sessions=0)])
