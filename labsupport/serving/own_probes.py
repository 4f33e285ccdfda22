"""The server's own probe endpoints, `GET /livez` and `GET /readyz`, answered by your logic.

    >>> from labsupport.serving.own_probes import OwnProbes
    >>> probes = OwnProbes(livez=lambda previous, current: current.value("up") == 1.0)
    >>> probes.answer("livez", "up 1.0\\n", now_s=10.0)
    (200, {'ok': True})
    >>> probes.answer("livez", "up 0.0\\n", now_s=11.0)
    (503, {'ok': False})
    >>> probes.answer("readyz", "up 1.0\\n", now_s=11.0)[0]     # no handler: no such route
    404

`srelab serve --livez-handler SPEC --readyz-handler SPEC` (SPEC as for `--stream-handler`:
`module:function` or `pickle:BASE64`, e.g. a learner's `lab.ref(...)`) makes each endpoint call
`fn(previous, current) -> bool`. `current` is a `serving.scrape.Scrape` of the server's own
/metrics, rendered at this call; `previous` is the one rendered at the previous call of the same
endpoint (None at the first), so a handler can compare counters between two probes, as a
Kubernetes probe sends one every `periodSeconds`. True answers 200; False, anything else or an
exception answers 503 with the reason. Like every route, it runs on the server's event loop:
when the loop cannot run, nothing answers and the prober's own timeout decides. A handler that
is learner code runs contained (`serve_cli` re-executes itself under `labsupport.contain`).
"""

from __future__ import annotations

from collections.abc import Callable

from labsupport.serving.scrape import Scrape

ENDPOINTS = ("livez", "readyz")


class OwnProbes:
    def __init__(self, livez: Callable | None = None, readyz: Callable | None = None):
        self.handlers = {"livez": livez, "readyz": readyz}
        self.previous: dict[str, Scrape | None] = dict.fromkeys(ENDPOINTS)

    def answer(self, endpoint: str, metrics_text: str, now_s: float) -> tuple[int, dict]:
        """(HTTP status, JSON body) of one call of `endpoint` given the /metrics text now."""
        fn = self.handlers.get(endpoint)
        if fn is None:
            return 404, {"error": f"/{endpoint} is not served: start with --{endpoint}-handler"}
        current = Scrape.from_text(metrics_text, t_s=now_s, elapsed_s=0.0)
        previous, self.previous[endpoint] = self.previous[endpoint], current
        try:
            verdict = fn(previous, current)
        except Exception as exc:  # the handler's bug fails the probe, with the reason
            return 503, {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        if not isinstance(verdict, bool):
            return 503, {"ok": False, "error": f"handler returned {verdict!r:.80}, not a bool"}
        return (200 if verdict else 503), {"ok": verdict}
