"""Many clients at the same instant through several gateway replicas: who gets in (lab 291).

    >>> from labsupport.gateway.clients import Traffic
    >>> from labsupport.gateway.limits import Limits
    >>> from labsupport.scenarios.api_key_abuse.bursts import Burst
    >>> t = Traffic("sk-a", sessions=50, requests=1, stop_s=0.2)
    >>> b = Burst("requests", {"sk-a": Limits(rpm=12)}, (t,))
    >>> b.clients
    50

A `Burst` is a set of keys with their limits and the clients that hit them (a one-request
session each, all sent at the start, for the usual burst). `play(stack, scripts, bursts)` runs
them on a running stack through `replicas` gateways (round robin, as a load balancer spreads
them), one burst after another with Redis flushed in between (each burst's keys are its own),
and returns a `BurstResult` each: what every client saw, the gateways' access log (which says
what was admitted: a client cut before its first token never saw its 200), and how many
requests the engine itself ran (the increase of `vllm:request_success_total`, every
finished_reason, once it is idle again). Clients still reading `cut_after_s` after their
traffic's `stop_s` hang up: admission was decided long before.
"""

from __future__ import annotations

from dataclasses import dataclass

from labsupport import wire
from labsupport.serving.metrics import metric_value


@wire.record
@dataclass(frozen=True)
class Burst:
    name: str
    keys: dict  # API key -> Limits
    traffics: tuple  # gateway.clients.Traffic, sent all at once
    cut_after_s: float = 1.5

    @property
    def clients(self) -> int:
        return sum(t.sessions * (t.requests or 1) for t in self.traffics)


@wire.record
@dataclass
class BurstResult:
    name: str
    results: list  # ClientResult per request
    log: list  # the gateways' access log (times from the burst's start)
    engine_requests: int  # requests the engine ran during the burst

    def admitted(self, key: str | None = None) -> int:
        """Requests of `key` (every key: None) the gateways let through (logged 200)."""
        return sum(e["status"] == 200 for e in self.log if key is None or e["key"] == key)

    def refused(self, key: str | None = None) -> int:
        """Requests of `key` the clients saw refused with a 429."""
        return sum(r.status == 429 for r in self.results if key is None or r.key == key)


def _engine_requests(text: str) -> float:
    return metric_value(text, "vllm:request_success_total") or 0.0


def play(stack, scripts, bursts: list[Burst], *, replicas: int = 2) -> list[BurstResult]:
    """The bursts on the running `stack`, one after the other (see the module docstring)."""
    keys = {k: v for b in bursts for k, v in b.keys.items()}
    out = []
    with stack.gateway(scripts, keys, replicas=replicas) as gw:
        for burst in bursts:
            before = stack.metrics()
            rnd = gw.play(list(burst.traffics), round_s=0.0, label=burst.name,
                          cut_after_s=burst.cut_after_s)  # fmt: skip
            ran = _engine_requests(stack.metrics()) - _engine_requests(before)
            out.append(BurstResult(burst.name, rnd.results, rnd.log, round(ran)))
    return out
