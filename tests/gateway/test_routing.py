import pytest

from labsupport.gateway import routing
from labsupport.gateway.routing import FirstUpstream, build


def test_the_default_is_the_first_upstream_and_never_retries():
    router = build(None, ["primary", "backup"])
    assert isinstance(router, FirstUpstream)
    assert router.choose(0.0, ()) == "primary"
    assert router.choose(0.0, ("primary",)) is None
    router.record("primary", 0.0, "ok", 0.01)  # accepted, ignored


class RoundRobin:
    def __init__(self, upstreams, *, start=0):
        self.upstreams, self.next = upstreams, start

    def choose(self, now_s, tried):
        name = self.upstreams[self.next % len(self.upstreams)]
        self.next += 1
        return name

    def record(self, upstream, now_s, outcome, ttft_s):
        assert outcome in routing.OUTCOMES


def test_a_class_is_built_with_the_upstreams_and_the_extra_arguments():
    router = build(RoundRobin, ("a", "b", "c"), start=1)
    assert router.upstreams == ["a", "b", "c"]
    assert [router.choose(0.0, ()) for _ in range(3)] == ["b", "c", "a"]


def test_a_reference_is_loaded_first():
    class Ref:
        def load(self):
            return RoundRobin

    assert build(Ref(), ["x"]).choose(0.0, ()) == "x"


def test_a_policy_that_fails_at_construction_raises():
    def broken(upstreams):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        build(broken, ["a"])
