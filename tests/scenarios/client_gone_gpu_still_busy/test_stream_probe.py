import asyncio

import pytest

from labsupport.serving import cancel_probe
from labsupport.serving.disconnects import naive_stream_outputs


async def finally_abort(handle):
    try:
        async for out in handle.stream():
            yield out
    finally:
        if not handle.finished:
            handle.abort()


async def swallow(handle):
    try:
        async for out in handle.stream():
            yield out
    except asyncio.CancelledError:
        handle.abort()


async def broken(handle):
    yield 1 / 0


async def coroutine(handle):
    raise NotImplementedError("Exercise stream_outputs: write your code here")


@pytest.mark.parametrize("mode", ["cancel", "close"])
def test_naive_handler_leaves_the_request_running(mode):
    p = cancel_probe.probe(naive_stream_outputs, mode, leave_after_tokens=2)
    assert p.tokens == 2 and p.engine_reason is None and p.error is None
    assert p.steps_after_left > 20 and p.kv_blocks_used > 0
    assert p.cancel_propagated is (True if mode == "cancel" else None)


@pytest.mark.parametrize("mode", ["cancel", "close"])
def test_aborting_handler_frees_the_request(mode):
    p = cancel_probe.probe(finally_abort, mode)
    assert (p.tokens, p.engine_reason, p.kv_blocks_used) == (3, "abort", 0)
    assert p.steps_after_left <= 1


def test_complete_reads_every_token():
    p = cancel_probe.probe(finally_abort, "complete", max_tokens=10)
    assert (p.tokens, p.last_reason, p.engine_reason) == (10, "length", "length")


def test_a_swallowed_cancellation_is_reported():
    p = cancel_probe.probe(swallow, "cancel")
    assert p.engine_reason == "abort" and p.cancel_propagated is False


def test_handler_errors_and_non_generators():
    assert cancel_probe.probe(broken, "complete").error.startswith("ZeroDivisionError")
    with pytest.raises(NotImplementedError):
        cancel_probe.probe(coroutine, "cancel")
    with pytest.raises(cancel_probe.NotAStream):
        cancel_probe.probe(lambda handle: [1, 2], "cancel")
    with pytest.raises(ValueError):
        cancel_probe.probe(finally_abort, "sideways")
