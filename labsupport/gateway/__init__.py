"""An API gateway in front of an engine: API keys, per-key limits in a real Redis, relaying.

    >>> from labsupport.gateway import GatewayConfig, Limits
    >>> cfg = GatewayConfig({"engine": "http://127.0.0.1:8000"}, keys={"sk-a": Limits(rpm=60)})
    >>> cfg.authenticates, cfg.limited
    (True, False)

What a hosted LLM API puts between its customers and its engines, as real processes: the
gateway (`app`, served by `cli`, started by `launcher`) checks the key, asks two Lua scripts run
atomically inside a real `redis-server` (`redisd`) whether the request is admitted and, once it
ends, what it really cost (`limits`), picks an upstream (`routing`), relays the stream and
counts its tokens (`proxy`), and logs each response. `clients` plays many API customers at once
against gateway replicas and measures what each request saw. Nothing here is lab-specific: a
lab brings its scripts, keys, upstreams and traffic.

Modules: config (GatewayConfig, AccessEntry), limits (Limits, the script contract, limiters),
redisd (a throwaway redis-server), app, proxy, routing, launcher, cli, clients.
"""

from labsupport.gateway.config import AccessEntry, GatewayConfig
from labsupport.gateway.limits import Admission, Limits

__all__ = ["AccessEntry", "Admission", "GatewayConfig", "Limits"]
