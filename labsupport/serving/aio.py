"""Run a coroutine from synchronous code, also inside Jupyter, whose event loop already runs.

    >>> import asyncio
    >>> from labsupport.serving.aio import run_sync
    >>> run_sync(lambda: asyncio.sleep(0, result=7))
    7

With no loop running this is `asyncio.run`; inside a running loop (a notebook cell) the
coroutine runs on a fresh loop in a helper thread, and its exception is re-raised here.
"""

from __future__ import annotations

import asyncio
import threading


def run_sync(make_coro, *, thread_name: str = "srelab-run-sync"):
    """Call `make_coro()` and run the coroutine it returns to completion; return its value."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=thread_name)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
