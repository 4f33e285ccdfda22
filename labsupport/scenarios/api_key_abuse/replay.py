"""Play admit and settle calls through a pair of scripts in a real Redis, with given clocks.

    >>> from labsupport.gateway.limits import Limits
    >>> from labsupport.scenarios.api_key_abuse.production import PRODUCTION
    >>> from labsupport.scenarios.api_key_abuse.replay import Call, replay
    >>> plan = Limits(rpm=2)
    >>> calls = [Call("admit", "k", plan, 0, tokens=10) for _ in range(3)]
    >>> [a.admitted for a in replay(PRODUCTION, calls)]
    [True, True, False]

A `Call` is what the gateway would do at `now_ms`: `admit` a request that may cost `tokens`,
or `settle` one that was charged `tokens` and really cost `used`. The gateway's clock is
replaced by the call's, so a minute of traffic replays in a blink and every decision is
reproducible. `replay` starts its own redis-server, loads the scripts, and returns one
`Admission` per call (a settle answers admitted=True, or the error its script raised).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from labsupport import wire
from labsupport.gateway.limits import Admission, Limits, ScriptLimiter
from labsupport.gateway.redisd import redis_server


@wire.record
@dataclass(frozen=True)
class Call:
    op: str  # "admit" | "settle"
    key: str
    limits: Limits
    now_ms: int
    tokens: int  # admit: what it may cost; settle: what admit charged
    used: int = 0  # settle: what it really cost


def replay(scripts, calls: list[Call], *, timeout_s: float = 5.0) -> list[Admission]:
    """Each call's answer, in order, from a fresh Redis running `scripts`."""
    with redis_server() as store:
        client = store.client(socket_timeout=timeout_s)
        limiter = ScriptLimiter(client, scripts.admit, scripts.settle)
        out: list[Admission] = []
        hung = False
        for call in calls:
            if hung:
                out.append(Admission(False, 0, "error", "not asked: a script before it hung"))
            elif call.op == "admit":
                out.append(limiter.admit(call.key, call.limits, cost=call.tokens,
                                         now_ms=call.now_ms))  # fmt: skip
            elif call.op == "settle":
                err = limiter.settle(call.key, call.limits, reserved=call.tokens, used=call.used,
                                     now_ms=call.now_ms)  # fmt: skip
                out.append(Admission(err is None, 0, "settled", err))
            else:
                raise ValueError(f"op must be admit or settle, got {call.op!r}")
            if out[-1].error and ("BUSY" in out[-1].error or "Timeout" in out[-1].error):
                hung = True
                with contextlib.suppress(Exception):
                    client.script_kill()  # so that the server stops at once
        client.close()
    return out
