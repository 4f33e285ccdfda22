import asyncio

import pytest

from labsupport.scenarios.client_gone_gpu_still_busy import release, stream_probe


async def finally_ends(handle):
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


async def late(handle):
    try:
        async for out in handle.stream():
            yield out
    except (asyncio.CancelledError, GeneratorExit):
        await asyncio.sleep(0.3)
        handle.abort()
        raise


async def after_n(handle):
    n = 0
    async for out in handle.stream():
        yield out
        n += 1
        if n == 20:
            handle.abort()


async def broken(handle):
    yield 1 / 0


async def coroutine(handle):
    raise NotImplementedError("Exercise stream_outputs: write your code here")


@pytest.fixture(scope="module")
def probes():
    return {
        "stream_outputs": stream_probe.probe_all(release.stream_outputs),
        "finally_ends": stream_probe.probe_all(finally_ends),
        "swallow": stream_probe.probe_all(swallow, ("cancel",)),
        "late": stream_probe.probe_all(late, ("cancel",)),
        "after_n": stream_probe.probe_all(after_n, ("complete",)),
    }


@pytest.mark.parametrize("mode", ["cancel", "close"])
def test_the_release_leaves_the_request_running(probes, mode):
    p = probes["stream_outputs"][mode]
    assert p.tokens == 3 and p.engine_reason is None and p.error is None
    assert p.tokens_after_left > 20 and p.kv_blocks_used > 0
    assert p.cancel_propagated is (True if mode == "cancel" else None)


@pytest.mark.parametrize("mode", ["cancel", "close"])
def test_a_handler_that_ends_the_request_frees_it(probes, mode):
    p = probes["finally_ends"][mode]
    assert (p.tokens, p.engine_reason, p.kv_blocks_used) == (3, "abort", 0)
    assert p.tokens_after_left <= 15 and p.handler_returned_s < 1.0


def test_complete_reads_every_token_slowly(probes):
    p = probes["finally_ends"]["complete"]
    assert (p.tokens, p.last_reason, p.engine_reason) == (160, "length", "length")
    assert p.max_tokens == 160


def test_a_swallowed_cancellation_is_reported(probes):
    p = probes["swallow"]["cancel"]
    assert p.engine_reason == "abort" and p.cancel_propagated is False


def test_a_late_end_is_counted_from_when_the_consumer_left(probes):
    p = probes["late"]["cancel"]
    assert p.engine_reason == "abort" and p.tokens_after_left > 15  # 0.3 s of >= 5 ms steps
    assert p.handler_returned_s >= 0.3


def test_an_end_after_n_tokens_shows_on_a_long_read(probes):
    p = probes["after_n"]["complete"]
    assert p.tokens < 160 and p.engine_reason == "abort"


def test_handler_errors_and_non_generators():
    assert stream_probe.probe(broken, "complete").error.startswith("ZeroDivisionError")
    with pytest.raises(NotImplementedError):
        stream_probe.probe(coroutine, "cancel")
    with pytest.raises(stream_probe.NotAStream):
        stream_probe.probe(lambda handle: [1, 2], "cancel")
    with pytest.raises(ValueError):
        stream_probe.probe(finally_ends, "sideways")
