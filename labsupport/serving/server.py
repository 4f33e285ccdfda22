"""The OpenAI-compatible HTTP API (FastAPI) in front of the engine, speaking vLLM's dialect.

    >>> from labsupport.serving.engine import Engine
    >>> from labsupport.serving.faults import FaultController
    >>> from labsupport.serving.server import ServerState, create_app
    >>> state = ServerState(Engine.build(device="cpu"), faults=FaultController())
    >>> sorted(r.path for r in create_app(state).routes if r.path.startswith("/v1"))
    ['/v1/chat/completions', '/v1/completions', '/v1/models', '/v1/models/{model_id:path}']

Routes as vLLM's `api_server`: `POST /v1/completions` and `POST /v1/chat/completions`
(server-sent events or one JSON body; `Content-Type: application/json` only), `GET /v1/models`,
`GET /v1/models/{id}`, `GET /version`, `GET /health` (200 while the engine thread lives, as
vLLM's: it does not see a wedged step), `GET /metrics` (Prometheus, vLLM's families: see
`metrics`). Ours beside them: `GET /ready` (503 while draining or when the engine is dead),
`GET /debug/heartbeat` (engine step counter and pending work, for liveness logic), `GET /livez`
and `GET /readyz` (answered by logic given at start, `--livez-handler`: see `own_probes`),
`GET|POST /admin/fault` (fault injection, behind the run's token and loopback checks: see
`admin`). Requests and bodies: `protocol` (completions), `chat`, `sampling_fields`; answers:
`generation` (plain) and `streaming` (SSE). Run it with `serve_cli`.

Bodies are read with the limit enforced while reading (`bodies`); a client that hangs up
mid-upload is logged as a disconnect, a body nested too deeply is a 400.

Cancellation: when a client goes away, its requests are aborted and their KV blocks freed. For
streams, Starlette's StreamingResponse notices the ASGI `http.disconnect` and cancels the body
iterator; for plain requests the handler races the work against a disconnect listener, as vLLM's
`with_cancellation` does. The `no_cancel_on_disconnect` fault skips the abort.

Stream handler: `ServerState(..., stream_handler=fn)` (`srelab serve --stream-handler`)
makes every stream iterate `fn(handle)`, an async generator of the handle's `TokenOutput`s, as
vLLM's server iterates `AsyncLLM.generate()`; the server then never aborts on disconnect itself:
cancelling is the handler's job. A client that leaves cancels it (`CancelledError` at its
`await`) or, when it was between tokens, closes it (`GeneratorExit` at its `yield`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import metadata

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from labsupport.serving import admin
from labsupport.serving.bodies import ClientGone, parse_json, read_body, require_json
from labsupport.serving.chat import parse_chat
from labsupport.serving.errors import ApiError
from labsupport.serving.faults import FAULTS
from labsupport.serving.generation import chat_response, collect, completion_response, failure
from labsupport.serving.generation import submit as submit_job
from labsupport.serving.protocol import parse_completion
from labsupport.serving.requests import EngineDeadError
from labsupport.serving.state import ServerState
from labsupport.serving.streaming import events

__all__ = ["ServerState", "create_app"]

log = logging.getLogger("srelab.server")
STARTED = int(time.time())


def _version() -> str:
    try:
        return metadata.version("llm-sre-labs")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _error(exc: ApiError, state: ServerState | None = None) -> JSONResponse:
    if state is not None:
        state.metrics.rejected.labels(str(exc.status)).inc()
    # a body left unread (413) cannot be skipped on a keep-alive connection: close it
    headers = {"Connection": "close"} if exc.status == 413 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _gone(exc: ClientGone) -> Response:
    log.info("client disconnected: %s", exc)
    return Response(status_code=499)  # nobody reads it


_FAULT_FIELDS = {"name", "value", "enabled"}


def _fault_request(data) -> tuple[str, float | None, bool]:
    """(name, value, enabled) of a valid POST /admin/fault body; ApiError 400 otherwise."""
    if not isinstance(data, dict):
        raise ApiError(400, "Send a JSON object {name, value?, enabled?}.")
    extra = sorted(set(data) - _FAULT_FIELDS)
    if extra:
        raise ApiError(400, f"Unknown field(s): {', '.join(extra)}; send name, value?, enabled?.")
    name, enabled = data.get("name"), data.get("enabled", True)
    if not isinstance(name, str) or name not in FAULTS:
        raise ApiError(400, f"Unknown fault {name!r}; known: {', '.join(FAULTS)}.", "name")
    if not isinstance(enabled, bool):
        raise ApiError(400, f"enabled must be true or false, got {enabled!r}.", "enabled")
    try:
        value = FAULTS[name].check(data.get("value")) if enabled else None
    except ValueError as exc:
        raise ApiError(400, str(exc), "value") from None
    return name, value, enabled


class _TrackedStream(StreamingResponse):
    """A StreamingResponse that always reports its end, even if its body never started."""

    def __init__(self, content, on_close):
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:  # a body left between two events is closed now (GeneratorExit), not at GC
                await self.body_iterator.aclose()
            finally:
                self._on_close()


async def _listen_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _collect_all(choices) -> None:
    for c in choices:  # each handle buffers its outputs: reading them in turn loses nothing
        await collect(c)


async def _plain(state: ServerState, request: Request, job, choices, handles) -> Response:
    work = asyncio.ensure_future(_collect_all(choices))
    gone = asyncio.ensure_future(_listen_for_disconnect(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, gone):
            task.cancel()
        state.end(handles)
    if not work.done() or work.cancelled():
        return Response(status_code=499)  # nobody is listening
    work.result()
    if (exc := failure(choices)) is not None:
        return _error(exc, state)
    build = chat_response if job.kind == "chat" else completion_response
    return JSONResponse(build(state, job, choices))


async def _generate(state: ServerState, request: Request, parse) -> Response:
    if not state.accepting:
        return _error(ApiError(503, "Server is shutting down; not accepting new requests."), state)
    try:
        require_json(request)
        job = parse(
            await read_body(request),
            state.tokenizer,
            state.model_name,
            state.max_model_len,
            check_token_ids=not state.faults.is_active("no_input_validation"),
        )
        choices = submit_job(state, job)
    except ClientGone as exc:
        return _gone(exc)
    except ApiError as exc:
        return _error(exc, state)
    except EngineDeadError as exc:
        return _error(ApiError(503, str(exc)), state)
    except ValueError as exc:
        return _error(ApiError(400, str(exc)), state)
    handles = [c.handle for c in choices]
    state.begin(handles)
    if job.stream:
        done: list[bool] = []
        return _TrackedStream(
            events(state, job, choices, done),
            on_close=lambda: state.end(handles, completed=bool(done)),
        )
    return await _plain(state, request, job, choices, handles)


def _own_probe(state: ServerState, endpoint: str) -> JSONResponse:
    """/livez and /readyz: the logic given to the server (serving.own_probes), else 404."""
    if state.own_probes is None:
        return JSONResponse({"error": f"/{endpoint} is not served"}, status_code=404)
    body, _ = state.metrics.render()
    status, answer = state.own_probes.answer(endpoint, body.decode(), time.monotonic())
    return JSONResponse(answer, status_code=status)


def _card(state: ServerState) -> dict:
    """vLLM's ModelCard for the served model."""
    return {
        "id": state.model_name,
        "object": "model",
        "created": STARTED,
        "owned_by": "srelab",
        "root": state.model_name,
        "parent": None,
        "max_model_len": state.max_model_len,
        "permission": [{
            "id": f"modelperm-{state.model_name}", "object": "model_permission",
            "created": STARTED, "allow_create_engine": False, "allow_sampling": True,
            "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
            "allow_fine_tuning": False, "organization": "*", "group": None,
            "is_blocking": False,
        }],
    }  # fmt: skip


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="srelab tiny LLM server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.serving = state

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await _generate(state, request, parse_completion)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await _generate(state, request, parse_chat)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_card(state)]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        if model_id != state.model_name:
            return _error(ApiError(404, f"The model `{model_id}` does not exist.", "model"))
        return _card(state)

    @app.get("/version")
    async def version():
        return {"version": _version()}

    @app.get("/health")
    async def health():
        return Response(status_code=200 if state.engine.is_alive() else 503)

    @app.get("/ready")
    async def ready():
        ok = state.accepting and state.engine.is_alive()
        return JSONResponse(
            {"ready": ok, "accepting": state.accepting}, status_code=200 if ok else 503
        )

    @app.get("/livez")
    async def livez():
        return _own_probe(state, "livez")

    @app.get("/readyz")
    async def readyz():
        return _own_probe(state, "readyz")

    @app.get("/metrics")
    async def metrics():
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/debug/heartbeat")
    async def heartbeat():
        alloc = state.engine.kv.allocator
        return {
            **state.engine.heartbeat().as_dict(),
            "kv_blocks_used": alloc.num_used,
            "kv_blocks_total": alloc.num_blocks,
            "http_in_flight": state.in_flight,
        }

    def _admin(request: Request, *, needs_json: bool) -> JSONResponse | None:
        try:
            admin.check(request.headers, state.admin_token, needs_json=needs_json)
        except admin.AdminRefused as exc:
            log.warning("admin request refused: %s", exc.message)
            return _error(ApiError(exc.status, exc.message))
        return None

    @app.get("/admin/fault")
    async def get_faults(request: Request):
        if (refused := _admin(request, needs_json=False)) is not None:
            return refused
        return {"active": state.faults.active(), "known": {n: f.doc for n, f in FAULTS.items()}}

    @app.post("/admin/fault")
    async def set_fault(request: Request):
        if (refused := _admin(request, needs_json=True)) is not None:
            return refused
        try:
            name, value, enabled = _fault_request(parse_json(await read_body(request, 4096)))
        except ClientGone as exc:
            return _gone(exc)
        except ApiError as exc:
            return _error(exc)
        if enabled:
            state.faults.enable(name, value)
        else:
            state.faults.disable(name)
        # not logged: the logs are evidence a learner reads, and must not name the cause
        return {"active": state.faults.active()}

    return app
