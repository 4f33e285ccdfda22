"""The gateway's limits as deployed: the two Lua scripts the API's Redis runs (lab 291).

    >>> from labsupport.scenarios.api_key_abuse.production import PRODUCTION
    >>> PRODUCTION.label, "HMGET" in PRODUCTION.admit
    ('as deployed', True)

`labsupport.gateway.limits` says what the scripts are given (KEYS, ARGV) and must answer.
The deployed pair keeps one bucket per key in a Redis hash: a bucket holds up to a minute's
worth of requests and refills continuously; a request takes one out or is refused with the
time until one is back. Settling has nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from labsupport import wire


@wire.record
@dataclass(frozen=True)
class Scripts:
    """An admit script and a settle script, the pair a gateway runs (see gateway.limits)."""

    admit: str
    settle: str
    label: str = ""


ADMIT = """\
-- KEYS[1]: this key's bucket (a hash: level, at). ARGV[1]: now (ms), ARGV[2]: per minute
local now = tonumber(ARGV[1])
local per_minute = tonumber(ARGV[2])
local saved = redis.call("HMGET", KEYS[1], "level", "at")
local level = tonumber(saved[1]) or per_minute
local at = tonumber(saved[2]) or now
level = math.min(per_minute, level + math.max(0, now - at) * per_minute / 60000)
if level < 1 then
  return {0, math.ceil((1 - level) * 60000 / per_minute), "requests per minute"}
end
redis.call("HSET", KEYS[1], "level", level - 1, "at", now)
redis.call("PEXPIRE", KEYS[1], 120000)
return {1, 0, "ok"}
"""

SETTLE = """\
return 0
"""

PRODUCTION = Scripts(ADMIT, SETTLE, "as deployed")
