import pytest

from labsupport.gateway import redisd
from labsupport.gateway.limits import Limits
from labsupport.scenarios.api_key_abuse.production import PRODUCTION, Scripts
from labsupport.scenarios.api_key_abuse.replay import Call, replay

pytestmark = pytest.mark.skipif(not redisd.available(), reason="redis-server is not installed")


def test_the_deployed_scripts_count_requests_and_nothing_else():
    plan = Limits(rpm=3, tpm=100, max_streams=1, max_global=1)
    calls = [Call("admit", "sk-a", plan, 0, tokens=10_000) for _ in range(4)]
    calls += [Call("admit", "sk-a", plan, 20_001, tokens=5), Call("settle", "sk-a", plan, 0, 5, 1)]
    got = replay(PRODUCTION, calls)
    assert [a.admitted for a in got] == [True, True, True, False, True, True]
    assert got[3].reason == "requests per minute" and got[3].retry_after_ms == 20_000
    assert got[5].reason == "settled" and got[5].error is None


def test_a_broken_script_is_an_error_per_call_and_a_bad_op_is_refused():
    broken = Scripts("return redis.call('NOPE')", "error('settle failed')", "broken")
    plan = Limits()
    got = replay(broken, [Call("admit", "k", plan, 0, 1), Call("settle", "k", plan, 0, 1, 1)])
    assert "the admit script failed" in got[0].error
    assert "the settle script failed" in got[1].error
    with pytest.raises(ValueError, match="admit or settle"):
        replay(PRODUCTION, [Call("refund", "k", plan, 0, 1)])


def test_a_script_that_never_ends_is_stopped_and_the_rest_not_asked():
    looping = Scripts("while true do end", "return 0", "loops")
    plan = Limits()
    got = replay(looping, [Call("admit", "k", plan, 0, 1), Call("admit", "k", plan, 1, 1)],
                 timeout_s=3.0)  # fmt: skip
    assert not got[0].admitted and got[0].error
    assert got[1].error == "not asked: a script before it hung"
