"""Lab 285's model server: the serving stack as the team deployed it, plus your checks.

    >>> from labsupport.scenarios.device_side_assert import server
    >>> with server.serve() as srv:                       # doctest: +SKIP
    ...     httpx.get(srv.base_url + "/health").status_code
    200

The server is `labsupport.serving` (`srelab serve`) on the GPU when there is one, started with
`--setup` pointing here, which adds what the team's deployment has:

- the engine keeps serving when a step raises: the requests of that step fail with a 500 and
  the loop carries on (`carry_on`), and the step's failure is logged with the request ids it
  was running and the traceback;
- without a GPU the engine thread runs on `labsupport.cuda_standin` (a CPU stand-in for a CUDA
  context's asynchronous, sticky kernel errors);
- `check_request` (yours, or none): called with every completion body and the model's
  vocabulary size before the server parses it; a returned error object is the answer
  (status from its `code`, else 400), None lets the request through;
- `device_alive` (yours, or none): `GET /livez` answers 200 when `device_alive(device)` returns
  True, 503 otherwise (an exception counts as False), run on the server's own thread.

The server's own token-id checks are off (`--fault no_input_validation`), as in the deployed
build: requests reach the engine as the clients sent them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import traceback
from dataclasses import dataclass

from labsupport.serving.launcher import serve_subprocess
from labsupport.serving.shutdown import encode_handler

log = logging.getLogger("srelab.engine")

MIN_STEP_MS = 15.0  # paces the engine (a stand-in for GPU time per step), so requests batch
COMPLETION_PATHS = ("/v1/completions", "/v1/chat/completions")


@dataclass(frozen=True)
class Setup:
    """What `--setup` gets: your two functions (references, run contained) or None."""

    check_request: object = None
    device_alive: object = None

    def __call__(self, state):
        return install(state, self)


def _load(ref):
    if ref is None:
        return None
    if isinstance(ref, str):  # module:function
        from labsupport.isolate import _resolve

        return _resolve(ref)
    return ref.load() if hasattr(ref, "load") else ref


def _sendable(fn):
    """A reference as is; a function by name, or its code if it lives in a notebook."""
    if fn is None or hasattr(fn, "load") or isinstance(fn, str):
        return fn
    from labsupport.portable import sendable

    return sendable(fn)


def carry_on(engine) -> None:
    """The team's engine policy: a step that raises fails the requests it ran; the loop goes on."""
    step = engine.step

    def guarded_step() -> bool:
        try:
            return step()
        except Exception:
            batch = list(engine.scheduler.running)
            ids = ", ".join(r.request_id for r in batch)
            log.error(
                "engine step failed; failing %d request(s) [%s]\n%s",
                len(batch),
                ids,
                traceback.format_exc().rstrip(),
            )
            for req in batch:
                engine._finish(req, "error")
            return True

    engine.step = guarded_step


def _on_device(engine) -> None:
    from labsupport import cuda_standin

    loop = engine._loop
    with cuda_standin.device_thread(str(engine.device)):
        engine.warm_up()  # the stand-in's first steps are slow: not while serving

    def loop_on_device() -> None:
        with cuda_standin.device_thread(str(engine.device)):
            loop()

    engine._loop = loop_on_device


class DeviceLiveness:
    """`GET /livez` from `device_alive(device)`; `/readyz` is not served."""

    def __init__(self, fn, device: str):
        self.fn, self.device = fn, device
        self.calls, self.seconds = 0, 0.0

    def answer(self, endpoint: str, metrics_text: str, now_s: float) -> tuple[int, dict]:
        from labsupport import cuda_standin

        if endpoint != "livez":
            return 404, {"error": f"/{endpoint} is not served"}
        t0 = time.perf_counter()
        try:
            with cuda_standin.device_thread(self.device):
                verdict = self.fn(self.device)
        except Exception as exc:
            return 503, {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - t0
        ok = verdict is True
        return (200 if ok else 503), {"ok": ok}


def _validating(app, check, vocab_size: int):
    """ASGI middleware: completion bodies go through `check(body, vocab_size)` first."""
    from fastapi.responses import JSONResponse

    async def middleware(scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)
        if scope["path"] not in COMPLETION_PATHS:
            return await app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await app(scope, receive, send)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        answer = None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None  # the server answers malformed JSON itself
        if isinstance(body, dict):
            try:
                answer = check(body, vocab_size)
            except Exception as exc:  # a crashing check must not take the server down
                message = f"check_request raised {exc!r}"[:300]
                answer = {"error": {"message": message, "type": "InternalServerError",
                                    "param": None, "code": 500}}  # fmt: skip
        if answer is not None:
            error = answer.get("error") if isinstance(answer, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            status = code if isinstance(code, int) and 400 <= code <= 599 else 400
            response = JSONResponse(answer if isinstance(answer, dict) else {"error": answer},
                                    status_code=status)  # fmt: skip
            return await response(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        return await app(scope, replay, send)

    return middleware


def install(state, setup: Setup):
    """The `--setup` hook: the deployment's engine policy, the device, your two functions."""
    engine = state.engine
    carry_on(engine)
    _on_device(engine)
    alive = _load(setup.device_alive)
    if alive is not None:
        state.own_probes = DeviceLiveness(alive, str(engine.device))
    check = _load(setup.check_request)
    if check is None:
        return None
    vocab = engine.model_config.vocab_size
    return lambda app: _validating(app, check, vocab)


@contextlib.contextmanager
def serve(check_request=None, device_alive=None, *, echo: bool = False):
    """The deployed server as a subprocess (your functions: refs or None); yields it."""
    spec = encode_handler(Setup(_sendable(check_request), _sendable(device_alive)))
    args = ["--fault", "no_input_validation", "--min-step-ms", f"{MIN_STEP_MS:g}"]
    with serve_subprocess(*args, "--setup", spec, echo=echo, startup_timeout_s=120) as srv:
        yield srv
