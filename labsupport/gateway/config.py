"""What a gateway is told at start, and what it writes to its access log per response.

    >>> from labsupport.gateway.config import GatewayConfig
    >>> from labsupport.gateway.limits import Limits
    >>> cfg = GatewayConfig({"engine": "http://127.0.0.1:8000"}, keys={"sk-a": Limits(rpm=60)})
    >>> cfg.default_upstream, cfg.authenticates
    ('engine', True)

`GatewayConfig` travels to the gateway process pickled (`srelab gateway --config pickle:...`,
written by the launcher, never by a learner). `keys` maps each API key to its plan's `Limits`
(None: no authentication, no limits). The limits are decided by the `admit_lua`/`settle_lua`
scripts in the Redis at `redis_url` (see `limits`). `router` picks the upstream of each attempt
(see `routing`; None: always the first upstream, no retries); `first_token_s` is how long one
attempt may take to its first token before the gateway gives up on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labsupport import wire
from labsupport.gateway.limits import Limits


@dataclass
class GatewayConfig:
    upstreams: dict[str, str]  # name -> base URL, in order of preference
    keys: dict[str, Limits] | None = None
    redis_url: str | None = None
    admit_lua: str | None = None
    settle_lua: str | None = None
    router: object = None  # a routing policy class or a reference to one (learner code: contained)
    first_token_s: float = 30.0
    request_timeout_s: float = 120.0
    name: str = "gateway"
    extra: dict = field(default_factory=dict)  # what a lab's router is constructed with

    @property
    def default_upstream(self) -> str:
        return next(iter(self.upstreams))

    @property
    def authenticates(self) -> bool:
        return self.keys is not None

    @property
    def limited(self) -> bool:
        return bool(self.redis_url and self.admit_lua and self.settle_lua)


@wire.record
@dataclass
class AccessEntry:
    """One response, as the gateway logs it (times: Unix seconds; tokens as the engine counts)."""

    request_id: str
    key: str
    status: int
    start_s: float
    end_s: float
    ttft_ms: float | None  # the gateway's time to the first token it relayed
    prompt_tokens: int
    max_tokens: int
    completion_tokens: int  # tokens relayed to the client
    upstream: str  # where the response came from ("" when none was asked)
    attempts: list  # [(upstream, outcome, ttft_ms | None)]: outcome ok | error | timeout
    retry_after_s: int | None = None  # on a 429: the Retry-After header sent
    reason: str = ""  # why refused or failed
    client_gone: bool = False  # the client closed its connection before the end

    def as_dict(self) -> dict:
        return {
            "request_id": self.request_id,
            "key": self.key,
            "status": self.status,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "ttft_ms": self.ttft_ms,
            "prompt_tokens": self.prompt_tokens,
            "max_tokens": self.max_tokens,
            "completion_tokens": self.completion_tokens,
            "upstream": self.upstream,
            "attempts": [list(a) for a in self.attempts],
            "retry_after_s": self.retry_after_s,
            "reason": self.reason,
            "client_gone": self.client_gone,
        }
