"""Who may switch faults on a running server: a per-run token, loopback names, JSON only.

    >>> from labsupport.serving.admin import TOKEN_ENV, admin_headers, new_token
    >>> token = new_token()
    >>> len(token) >= 40, TOKEN_ENV
    (True, 'SRELAB_ADMIN_TOKEN')
    >>> sorted(admin_headers(token))
    ['Content-Type', 'X-Srelab-Admin-Token']

`/admin/*` answers only a request that
- names the server by a loopback name in `Host` (`127.0.0.1`, `localhost`, `[::1]`): a page
  on another site that rebinds its DNS name to 127.0.0.1 still sends its own name;
- carries no foreign `Origin` and no cross-site `Sec-Fetch-Site`: what a browser adds to a
  request a web page makes;
- sends the run's token in `X-Srelab-Admin-Token` (compared in constant time);
- posts `Content-Type: application/json`: a form or `text/plain` body, the only kinds a page
  can post cross-site without a preflight, is refused.
Each refusal is a 4xx with an OpenAI-style JSON error that says what to fix.

The token: `serve_subprocess` makes a fresh one per server (`srv.admin_token`,
`srv.set_fault(...)`) and hands it over in the child's environment (`SRELAB_ADMIN_TOKEN`),
never on the command line, in a log or on /metrics. A server started by hand without that
variable has its admin endpoint switched off; `srelab serve` says how to switch it on.
Pods started by the k8s supervisor get it with `spec.with_env(**token_env(token))`.
"""

from __future__ import annotations

import hmac
import secrets

TOKEN_ENV = "SRELAB_ADMIN_TOKEN"
TOKEN_HEADER = "X-Srelab-Admin-Token"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_SAME_SITE = frozenset({"same-origin", "none"})


class AdminRefused(Exception):
    """A request /admin refuses: `status` and a message that says what to fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_env(token: str) -> dict[str, str]:
    """The environment entry that hands `token` to a server child."""
    return {TOKEN_ENV: token}


def admin_headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers[TOKEN_HEADER] = token
    return headers


def host_name(host: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '::1', 'LocalHost' -> 'localhost'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check(headers, expected_token: str | None, *, needs_json: bool) -> None:
    """Raise AdminRefused unless the request may use /admin (headers: case-insensitive)."""
    host = headers.get("host", "")
    if host_name(host) not in LOOPBACK_NAMES:
        raise AdminRefused(
            403, f"Host {host!r} is not a loopback name: call the admin API as 127.0.0.1."
        )
    origin = headers.get("origin")
    if origin is not None and origin.lower() != f"http://{host.strip().lower()}":
        raise AdminRefused(403, f"Cross-origin admin request refused (Origin {origin!r}).")
    if headers.get("sec-fetch-site", "none").lower() not in _SAME_SITE:
        raise AdminRefused(403, "Cross-site admin request refused (Sec-Fetch-Site).")
    if not expected_token:
        raise AdminRefused(
            403,
            f"The admin API is off: this server was started without {TOKEN_ENV}. Restart it "
            f"with {TOKEN_ENV} set and send that value in the {TOKEN_HEADER} header.",
        )
    sent = headers.get(TOKEN_HEADER.lower())
    if not sent:
        raise AdminRefused(401, f"Send the run's admin token in the {TOKEN_HEADER} header.")
    if not hmac.compare_digest(sent.encode(), expected_token.encode()):
        raise AdminRefused(401, f"Wrong admin token in {TOKEN_HEADER}.")
    if needs_json:
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise AdminRefused(
                415, f"Content-Type must be application/json, got {kind or 'none'!r}."
            )


def post_fault(
    base_url: str,
    token: str | None,
    name: str,
    value: float | None = None,
    *,
    enabled: bool = True,
    timeout_s: float = 10.0,
):
    """POST /admin/fault with the token; returns the httpx.Response (raises on no answer)."""
    import httpx

    body: dict = {"name": name, "enabled": enabled}
    if value is not None:
        body["value"] = value
    return httpx.post(
        f"{base_url}/admin/fault",
        json=body,
        headers=admin_headers(token),
        timeout=timeout_s,
        trust_env=False,
    )
