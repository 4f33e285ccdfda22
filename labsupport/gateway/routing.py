"""Which upstream gets each attempt: the routing policy a gateway consults, and its default.

    >>> from labsupport.gateway.routing import FirstUpstream, build
    >>> router = build(None, ["primary", "backup"])
    >>> router.choose(0.0, ()), router.choose(0.1, ("primary",))
    ('primary', None)

A policy is an object with two methods, called by the gateway for every request:

- `choose(now_s, tried) -> str | None`: the upstream for the next attempt of a request;
  `tried` holds the upstreams this request already failed on, in order (empty on the first
  attempt). None gives up: the client gets the last failure (a 5xx).
- `record(upstream, now_s, outcome, ttft_s)`: how an attempt ended: outcome "ok" (ttft_s: its
  seconds to the first token), "error" (a 5xx, a refused or broken connection) or "timeout"
  (no first token within the gateway's deadline; ttft_s None).

`now_s` is the gateway's monotonic clock. The gateway builds the policy once at start with
`make(upstreams, **extra)` (a class, a function, or a reference to one, `build`); a policy that
raises fails only the request it was asked about (a 500 the log explains). The gateway never
tries more than `MAX_ATTEMPTS` upstreams for one request, whatever the policy says.
"""

from __future__ import annotations

MAX_ATTEMPTS = 4
OUTCOMES = ("ok", "error", "timeout")


class FirstUpstream:
    """Always the first upstream, never a retry: a gateway with one backend."""

    def __init__(self, upstreams: list[str], **_):
        self.upstream = upstreams[0]

    def choose(self, now_s: float, tried: tuple) -> str | None:
        return None if tried else self.upstream

    def record(self, upstream: str, now_s: float, outcome: str, ttft_s: float | None) -> None:
        pass


def build(make, upstreams: list[str], **extra):
    """The policy object: `make(upstreams, **extra)`; `make` may be a reference (`.load()`)."""
    if make is None:
        return FirstUpstream(upstreams)
    if hasattr(make, "load"):
        make = make.load()
    if isinstance(make, str):
        from labsupport.serving.shutdown import resolve_handler

        make = resolve_handler(make)
    return make(list(upstreams), **extra)
