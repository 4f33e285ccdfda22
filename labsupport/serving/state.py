"""What the server's routes share: engine, faults, metrics, in-flight requests, readiness.

    >>> from labsupport.serving.engine import Engine
    >>> from labsupport.serving.faults import FaultController
    >>> from labsupport.serving.state import ServerState
    >>> state = ServerState(Engine.build(device="cpu"), faults=FaultController())
    >>> state.in_flight, state.accepting, state.admin_token is None
    (0, True, True)

An API request may run several engine requests (a list of prompts, `n` samples): `begin` and
`end` take the group. `in_flight` counts API requests; when one ends before its client got the
last event, the client is gone: its engine requests are aborted (unless a stream handler owns
cancellation, or the `no_cancel_on_disconnect` fault is on).
"""

from __future__ import annotations

import asyncio
import contextlib

from labsupport.serving.faults import FaultController
from labsupport.serving.metrics import ServingMetrics
from labsupport.serving.requests import RequestHandle


class ServerState:
    def __init__(
        self,
        engine,
        *,
        faults: FaultController,
        model_name: str = "srelab-tiny",
        stream_handler=None,
        own_probes=None,
        admin_token: str | None = None,
        prompt_tokens_details: bool = False,
    ):
        self.engine = engine
        self.admin_token = admin_token  # None: /admin is off
        self.stream_handler = stream_handler  # handle -> async iterator of TokenOutput
        self.own_probes = own_probes  # /livez and /readyz logic (serving.own_probes), or None
        self.prompt_tokens_details = prompt_tokens_details  # vLLM's --enable-prompt-tokens-details
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
        self._groups: set[int] = set()
        self._idle: asyncio.Event | None = None

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            if self.in_flight == 0:
                self._idle.set()
        return self._idle

    def begin(self, handles: list[RequestHandle]) -> None:
        """An API request starts; `end` must be given the same list object."""
        self.in_flight += 1
        self._groups.add(id(handles))
        self.handles.update(handles)
        self._idle_event().clear()

    def end(self, handles: list[RequestHandle], *, completed: bool | None = None) -> None:
        """The HTTP side of an API request is over; if it did not finish, its client is gone.

        completed: whether the client got the response's last event (streams say so; default:
        whether the engine finished every request of the group).
        """
        if id(handles) not in self._groups:
            return
        self._groups.discard(id(handles))
        self.handles.difference_update(handles)
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle_event().set()
        done = all(h.finished for h in handles) if completed is None else completed
        if done:
            return
        self.metrics.client_disconnects.inc()
        for handle in handles:
            if handle.finished:
                continue
            handle.mark_client_gone()
            if self.stream_handler is None and not self.faults.is_active("no_cancel_on_disconnect"):
                handle.abort()
            # else: a stream handler owns cancellation; with the fault (on purpose)
            # the engine generates on, for nobody

    async def wait_idle(self, timeout_s: float | None = None) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle_event().wait(), timeout_s)
        return self.in_flight == 0

    def abort_all(self) -> int:
        n = self.in_flight
        for handle in list(self.handles):
            handle.abort(end_stream_now=True)
        self.engine.abort_all()
        return n
