"""Per-key limits kept in Redis and decided by Lua scripts, as an API gateway keeps them.

    >>> from labsupport.gateway.limits import Limits, ScriptLimiter, keys_for
    >>> from labsupport.gateway.redisd import redis_server
    >>> ADMIT = '''
    ... local n = redis.call("INCR", KEYS[1])
    ... if n > tonumber(ARGV[2]) then redis.call("DECR", KEYS[1]); return {0, 1000, "rpm"} end
    ... return {1, 0, "ok"}'''
    >>> with redis_server() as store:
    ...     limiter = ScriptLimiter(store.client(), ADMIT, "return 0")
    ...     [limiter.admit("k1", Limits(rpm=2), cost=10, now_ms=0).admitted for _ in range(3)]
    [True, True, False]
    >>> keys_for("k1")[:2]
    ['rl:{k1}:requests', 'rl:{k1}:tokens']

The gateway asks two scripts, each run atomically inside Redis (`EVALSHA`, loaded again on a
`NOSCRIPT` answer): `admit` before a request goes upstream and `settle` once its response has
ended, however it ended. Both get the same KEYS and ARGV:

    KEYS[1]  rl:{KEY}:requests   the key's request budget      (yours to shape: a hash ...)
    KEYS[2]  rl:{KEY}:tokens     the key's token budget
    KEYS[3]  rl:{KEY}:streams    the key's responses in flight
    KEYS[4]  rl:global:streams   every key's responses in flight
    ARGV[1]  now_ms       the gateway's clock, whole milliseconds
    ARGV[2]  rpm          requests per minute allowed to this key
    ARGV[3]  tpm          tokens per minute allowed to this key
    ARGV[4]  max_streams  responses this key may have in flight
    ARGV[5]  max_global   responses all keys together may have in flight
    ARGV[6]  tokens       admit: what this request may cost (prompt + max_tokens);
                          settle: what admit charged it
    ARGV[7]  used         settle only: what it really cost (prompt + tokens generated)

`admit` returns `{1, 0, "ok"}` or `{0, retry_after_ms, reason}`; Redis turns Lua numbers into
integers, so milliseconds are whole. `ScriptLimiter` is the synchronous caller (tests, a
notebook); `AsyncScriptLimiter` the gateway's. Arguments are strings on the wire, as Redis
sends them: a script reads them with `tonumber`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labsupport import wire

GLOBAL_STREAMS_KEY = "rl:global:streams"


@wire.record
@dataclass(frozen=True)
class Limits:
    """What one API key may use (a plan), and what all keys together may have in flight."""

    rpm: int = 60
    tpm: int = 100_000
    max_streams: int = 1_000
    max_global: int = 10_000

    def argv(self) -> list[int]:
        return [self.rpm, self.tpm, self.max_streams, self.max_global]


@wire.record
@dataclass(frozen=True)
class Admission:
    admitted: bool
    retry_after_ms: int = 0
    reason: str = ""
    error: str | None = None  # the script failed or answered something else: what

    @property
    def retry_after_s(self) -> int:
        """The `Retry-After` header: whole seconds, at least 1."""
        return max(1, math.ceil(self.retry_after_ms / 1000))


def keys_for(api_key: str) -> list[str]:
    """KEYS of both scripts for `api_key` ({...}: one Redis Cluster hash slot per key)."""
    return [f"rl:{{{api_key}}}:requests", f"rl:{{{api_key}}}:tokens",
            f"rl:{{{api_key}}}:streams", GLOBAL_STREAMS_KEY]  # fmt: skip


def args_for(limits: Limits, now_ms: int, tokens: int, used: int | None = None) -> list[int]:
    out = [int(now_ms), *limits.argv(), int(tokens)]
    return out if used is None else [*out, int(used)]


def parse_reply(reply) -> Admission:
    """The admit script's answer as an Admission (a malformed one is refused, with the error)."""
    if not isinstance(reply, (list, tuple)) or len(reply) < 1:
        return Admission(False, 0, "error", f"admit returned {reply!r}, not {{1, 0, 'ok'}}")
    flag = reply[0]
    if flag not in (0, 1) or isinstance(flag, bool):
        return Admission(False, 0, "error", f"admit's first value is {flag!r}, not 1 or 0")
    retry = reply[1] if len(reply) > 1 else 0
    if not isinstance(retry, int) or isinstance(retry, bool):
        return Admission(False, 0, "error", f"admit's retry_after_ms is {retry!r}, not a number")
    reason = reply[2] if len(reply) > 2 else ""
    reason = reason.decode() if isinstance(reason, bytes) else str(reason)
    return Admission(bool(flag), int(retry), reason)


class ScriptLimiter:
    """admit/settle through the two scripts, on a synchronous `redis.Redis` client."""

    def __init__(self, client, admit_lua: str, settle_lua: str):
        self.client = client
        self._admit = client.register_script(admit_lua)
        self._settle = client.register_script(settle_lua)

    def admit(self, api_key: str, limits: Limits, *, cost: int, now_ms: int) -> Admission:
        import redis

        try:
            reply = self._admit(keys=keys_for(api_key), args=args_for(limits, now_ms, cost))
        except redis.RedisError as exc:
            return Admission(False, 0, "error", f"the admit script failed: {exc}")
        return parse_reply(reply)

    def settle(self, api_key: str, limits: Limits, *, reserved: int, used: int,
               now_ms: int) -> str | None:  # fmt: skip
        """None, or the error the settle script raised."""
        import redis

        try:
            self._settle(keys=keys_for(api_key), args=args_for(limits, now_ms, reserved, used))
        except redis.RedisError as exc:
            return f"the settle script failed: {exc}"
        return None


class AsyncScriptLimiter:
    """The same on a `redis.asyncio.Redis` client (the gateway's event loop)."""

    def __init__(self, client, admit_lua: str, settle_lua: str):
        self.client = client
        self._admit = client.register_script(admit_lua)
        self._settle = client.register_script(settle_lua)

    async def admit(self, api_key: str, limits: Limits, *, cost: int, now_ms: int) -> Admission:
        import redis

        try:
            reply = await self._admit(keys=keys_for(api_key), args=args_for(limits, now_ms, cost))
        except redis.RedisError as exc:
            return Admission(False, 0, "error", f"the admit script failed: {exc}")
        return parse_reply(reply)

    async def settle(self, api_key: str, limits: Limits, *, reserved: int, used: int,
                     now_ms: int) -> str | None:  # fmt: skip
        import redis

        try:
            await self._settle(
                keys=keys_for(api_key), args=args_for(limits, now_ms, reserved, used)
            )
        except redis.RedisError as exc:
            return f"the settle script failed: {exc}"
        return None
