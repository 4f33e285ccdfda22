"""What the server does on SIGTERM: pluggable, with vLLM's abort and a graceful drain built in.

    >>> from labsupport.serving.shutdown import resolve_handler
    >>> resolve_handler("drain").__name__, resolve_handler("abort").__name__
    ('drain', 'abort_in_flight')

A handler is `handler(ctx)`, sync or async, given a `ShutdownContext`. It decides what happens
before the process exits: when it returns, whatever is still in flight is aborted and the server
exits. `abort_in_flight` is vLLM's default (`--shutdown-timeout 0`): streams are cut at once.
`drain` stops accepting (readiness 503, new requests 503), lets in-flight streams finish for up
to `ctx.drain_timeout_s`, then returns. A lab passes the learner's handler as
`--sigterm-handler module:function` or as a pickled reference (`pickle:BASE64`, e.g. the
`lab.ref(...)` of an exercise, whose `.load()` gives the function).
A second SIGTERM or SIGINT while the handler runs cuts everything and exits.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import inspect
import logging
import pickle
import signal
from collections.abc import Callable

log = logging.getLogger("srelab.shutdown")


class ShutdownContext:
    """What a SIGTERM handler may do to the server."""

    def __init__(self, state, drain_timeout_s: float):
        self._state = state
        self.drain_timeout_s = drain_timeout_s

    @property
    def accepting(self) -> bool:
        return self._state.accepting

    def stop_accepting(self) -> None:
        """Readiness turns 503 and new completion requests get 503; in-flight ones go on."""
        self._state.accepting = False

    def in_flight(self) -> int:
        """Completion requests being served right now."""
        return self._state.in_flight

    async def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is in flight (True) or `timeout_s` passes (False)."""
        return await self._state.wait_idle(timeout_s)

    def abort_all(self) -> int:
        """Abort every in-flight request now; returns how many there were."""
        return self._state.abort_all()

    def log(self, message: str) -> None:
        log.warning("sigterm handler: %s", message)


async def abort_in_flight(ctx: ShutdownContext) -> None:
    """vLLM's default (--shutdown-timeout 0): in-flight requests are aborted immediately."""
    ctx.abort_all()


async def drain(ctx: ShutdownContext) -> None:
    """Stop accepting, let in-flight requests finish for up to drain_timeout_s."""
    ctx.stop_accepting()
    await ctx.wait_idle(ctx.drain_timeout_s)


def resolve_handler(spec) -> Callable | None:
    """A handler from a callable, a ref with `.load()`, abort, drain, pickle:... or mod:fn."""
    if spec is None or callable(spec) and not hasattr(spec, "load"):
        return spec
    if hasattr(spec, "load"):
        return spec.load()
    if spec == "abort":
        return abort_in_flight
    if spec == "drain":
        return drain
    if spec.startswith("pickle:"):
        return resolve_handler(pickle.loads(base64.b64decode(spec[len("pickle:") :])))
    module, sep, attr = spec.partition(":")
    if not sep:
        raise ValueError(
            f"sigterm handler {spec!r}: use abort, drain, module:function or pickle:..."
        )
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return resolve_handler(obj)


def decode_spec(spec: str):
    """The object a `pickle:` spec carries (None for abort, drain, module:function)."""
    if isinstance(spec, str) and spec.startswith("pickle:"):
        return pickle.loads(base64.b64decode(spec[len("pickle:") :]))
    return None


def encode_handler(obj) -> str:
    """The `pickle:` spec of a picklable callable or reference, for a child's command line."""
    return "pickle:" + base64.b64encode(pickle.dumps(obj)).decode()


class ShutdownController:
    """Runs the SIGTERM handler on the server's loop, then tells uvicorn to exit."""

    def __init__(self, state, server, handler: Callable | None, drain_timeout_s: float):
        self.state, self.server = state, server
        self.handler = handler or (drain if drain_timeout_s > 0 else abort_in_flight)
        self.ctx = ShutdownContext(state, drain_timeout_s)
        self.task: asyncio.Task | None = None
        self.signals: list[int] = []

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.on_signal, sig)

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    def on_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if self.task is None:
            log.warning("received %s: shutting down", signal.Signals(sig).name)
            self.task = asyncio.get_running_loop().create_task(self._run(sig))
        else:  # a second signal: stop waiting
            log.warning("received %s again: aborting everything", signal.Signals(sig).name)
            self.state.abort_all()
            self.task.cancel()
            self.server.should_exit = True

    async def _run(self, sig: int) -> None:
        handler = self.handler
        if sig == signal.SIGINT or self.state.faults.is_active("abort_on_sigterm"):
            handler = abort_in_flight
        try:
            result = handler(self.ctx)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("sigterm handler failed")
        finally:
            self.state.accepting = False
            aborted = self.state.abort_all()
            if aborted:
                log.warning("aborted %d in-flight request(s) at exit", aborted)
            self.server.should_exit = True
