"""The OpenAI-compatible HTTP API (FastAPI) in front of the engine.

    >>> from labsupport.serving.engine import Engine
    >>> from labsupport.serving.faults import FaultController
    >>> from labsupport.serving.server import ServerState, create_app
    >>> state = ServerState(Engine.build(device="cpu"), faults=FaultController())
    >>> sorted(r.path for r in create_app(state).routes if r.path.startswith(("/v1", "/he")))
    ['/health', '/v1/completions', '/v1/models']

Routes: `POST /v1/completions` (streaming as server-sent events, or one JSON body),
`GET /v1/models`, `GET /health` (200 while the engine thread lives, as vLLM's: it does not see a
wedged step), `GET /ready` (503 while draining or when the engine is dead), `GET /metrics`
(Prometheus), `GET /debug/heartbeat` (engine step counter and pending work, for liveness
logic), `GET|POST /admin/fault` (fault injection, behind the run's token and loopback checks:
see `admin`). Run it with `serve_cli`.

Bodies are read with the limit enforced while reading (`bodies`); a client that hangs up
mid-upload is logged as a disconnect, a body nested too deeply is a 400.

Cancellation: when a client goes away, its request is aborted and its KV blocks freed. For
streams, Starlette's StreamingResponse notices the ASGI `http.disconnect` and cancels the body
iterator; for plain requests the handler races the work against a disconnect listener, as vLLM's
`with_cancellation` does. The `no_cancel_on_disconnect` fault skips the abort (the bug of lab 286).

Stream handler (lab 286): `ServerState(..., stream_handler=fn)` (`srelab serve --stream-handler`)
makes every stream iterate `fn(handle)`, an async generator of the handle's `TokenOutput`s, as
vLLM's server iterates `AsyncLLM.generate()`; the server then never aborts on disconnect itself:
cancelling is the handler's job. A client that leaves cancels it (`CancelledError` at its
`await`) or, when it was between tokens, closes it (`GeneratorExit` at its `yield`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from labsupport.serving import admin
from labsupport.serving.bodies import ClientGone, parse_json, read_body
from labsupport.serving.faults import FAULTS, FaultController
from labsupport.serving.metrics import ServingMetrics
from labsupport.serving.protocol import (
    SSE_DONE,
    ApiError,
    ValidatedRequest,
    chunk_body,
    completion_body,
    parse_completion,
    sse,
    usage_chunk,
)
from labsupport.serving.requests import EngineDeadError, RequestHandle

log = logging.getLogger("srelab.server")


class ServerState:
    """Everything the routes share: engine, faults, metrics, in-flight requests, readiness."""

    def __init__(
        self,
        engine,
        *,
        faults: FaultController,
        model_name: str = "srelab-tiny",
        stream_handler=None,
        admin_token: str | None = None,
    ):
        self.engine = engine
        self.admin_token = admin_token  # None: /admin is off
        self.stream_handler = stream_handler  # handle -> async iterator of TokenOutput (lab 286)
        self.tokenizer = engine.tokenizer
        self.faults = faults
        self.model_name = model_name
        self.max_model_len = engine.model_config.max_model_len
        self.accepting = True
        self.in_flight = 0
        self.metrics = ServingMetrics(
            engine, model_name=model_name, in_flight=lambda: self.in_flight
        )
        self.handles: set[RequestHandle] = set()
        self.resident: list = []  # tensors kept alive with the server (the padding "weights")
        self._idle: asyncio.Event | None = None

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            if self.in_flight == 0:
                self._idle.set()
        return self._idle

    def begin(self, handle: RequestHandle) -> None:
        self.in_flight += 1
        self.handles.add(handle)
        self._idle_event().clear()

    def end(self, handle: RequestHandle, *, completed: bool | None = None) -> None:
        """The HTTP side of a request is over; if it did not finish, its client is gone.

        completed: whether the client got the response's last event (streams say so; default:
        whether the engine finished the request).
        """
        if handle not in self.handles:
            return
        self.handles.discard(handle)
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle_event().set()
        if not (handle.finished if completed is None else completed):
            self.metrics.client_disconnects.inc()
            handle.mark_client_gone()
            if self.stream_handler is None and not self.faults.is_active("no_cancel_on_disconnect"):
                handle.abort()
            # else: a stream handler owns cancellation; with the fault (lab 286, on purpose)
            # the engine generates on, for nobody

    async def wait_idle(self, timeout_s: float | None = None) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle_event().wait(), timeout_s)
        return self.in_flight == 0

    def abort_all(self) -> int:
        n = len(self.handles)
        for handle in list(self.handles):
            handle.abort(end_stream_now=True)
        self.engine.abort_all()
        return n


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


def _outputs(state: ServerState, handle: RequestHandle):
    if state.stream_handler is None:
        return handle.stream()
    outputs = state.stream_handler(handle)
    if not hasattr(outputs, "__aiter__"):
        if hasattr(outputs, "close"):
            outputs.close()  # e.g. a coroutine: `async def` without `yield`
        raise TypeError(
            f"the stream handler returned {type(outputs).__name__}, not an async "
            "iterator: write it as an async generator (async def ... yield)"
        )
    return outputs


async def _events(state: ServerState, handle: RequestHandle, req: ValidatedRequest, done: list):
    """The SSE body; appends to `done` once the client has the last event."""
    rid, model, n_out = handle.request_id, state.model_name, 0
    outputs = None
    try:
        outputs = _outputs(state, handle)
        async for out in outputs:
            if out.token_id is not None:
                n_out = out.num_output_tokens
                finish = out.finish_reason if out.finished else None
                yield sse(chunk_body(rid, model, out.text, finish))
            if out.finished and out.finish_reason in ("abort", "error"):
                status = 503 if out.finish_reason == "abort" else 500
                yield sse(ApiError(status, f"Request {out.finish_reason}ed by the server.").body())
                done.append(True)
                return  # no [DONE]: the client must see this stream as cut short
    except Exception:
        if state.stream_handler is None:
            raise
        log.exception("stream handler failed")
        handle.abort()
        yield sse(ApiError(500, "The stream handler failed.").body())
        done.append(True)
        return
    finally:
        if state.stream_handler is not None and hasattr(outputs, "aclose"):
            await outputs.aclose()
    if req.include_usage:
        yield sse(usage_chunk(rid, model, len(req.prompt_ids), n_out))
    yield SSE_DONE
    done.append(True)


async def _listen_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _complete(state: ServerState, request: Request, handle: RequestHandle, req) -> Response:
    work = asyncio.ensure_future(handle.collect())
    gone = asyncio.ensure_future(_listen_for_disconnect(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, gone):
            task.cancel()
        state.end(handle)
    if not work.done() or work.cancelled():
        return Response(status_code=499)  # nobody is listening
    outs = work.result()
    last = outs[-1]
    if last.finish_reason in ("abort", "error"):
        status = 503 if last.finish_reason == "abort" else 500
        return _error(ApiError(status, f"Request {last.finish_reason}ed by the server."), state)
    text = "".join(o.text for o in outs if o.token_id is not None)
    n_out = last.num_output_tokens
    body = completion_body(
        handle.request_id, state.model_name, text, last.finish_reason, len(req.prompt_ids), n_out
    )
    return JSONResponse(body)


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="srelab tiny LLM server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.serving = state

    @app.post("/v1/completions")
    async def completions(request: Request):
        if not state.accepting:
            return _error(
                ApiError(503, "Server is shutting down; not accepting new requests."), state
            )
        try:
            req = parse_completion(
                await read_body(request),
                state.tokenizer,
                state.model_name,
                state.max_model_len,
                check_token_ids=not state.faults.is_active("no_input_validation"),
            )
            handle = state.engine.submit(req.prompt_ids, req.params, f"cmpl-{uuid.uuid4().hex}")
        except ClientGone as exc:
            return _gone(exc)
        except ApiError as exc:
            return _error(exc, state)
        except EngineDeadError as exc:
            return _error(ApiError(503, str(exc)), state)
        except ValueError as exc:
            return _error(ApiError(400, str(exc)), state)
        state.begin(handle)
        if req.stream:
            done: list[bool] = []
            return _TrackedStream(
                _events(state, handle, req, done),
                on_close=lambda: state.end(handle, completed=bool(done)),
            )
        return await _complete(state, request, handle, req)

    @app.get("/v1/models")
    async def models():
        card = {
            "id": state.model_name,
            "object": "model",
            "owned_by": "srelab",
            "max_model_len": state.max_model_len,
        }
        return {"object": "list", "data": [card]}

    @app.get("/health")
    async def health():
        return Response(status_code=200 if state.engine.is_alive() else 503)

    @app.get("/ready")
    async def ready():
        ok = state.accepting and state.engine.is_alive()
        return JSONResponse(
            {"ready": ok, "accepting": state.accepting}, status_code=200 if ok else 503
        )

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
