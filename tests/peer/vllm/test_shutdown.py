"""Ported from vLLM tests/entrypoints/openai/completion/test_shutdown.py at
2a48a98329816fec103959bf34b79d022dfebe98: SIGTERM with --shutdown-timeout 0 (abort) or > 0
(drain), each case on a server of its own (--max-model-len 256, --max-num-seqs 4: conftest's
SERVERS, started with the others).

Out of scope (docs/peer_scope.md): test_multi_api_server_shutdown (--api-server-count, several
API server processes: this server is one process).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from dataclasses import dataclass, field

import psutil
import pytest

from . import openai_shim as openai
from .conftest import MODEL_NAME

_PROCESS_EXIT_TIMEOUT = 15
_SHUTDOWN_DETECTION_TIMEOUT = 10
_CHILD_CLEANUP_TIMEOUT = 10
_INFLIGHT_REQUEST_START_TIMEOUT = 5
_ABORT_CLIENT_TIMEOUT = 3


def _get_child_pids(parent_pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(parent_pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


async def _assert_children_cleaned_up(child_pids, timeout: float = _CHILD_CLEANUP_TIMEOUT):
    deadline = time.time() + timeout
    still_alive = list(child_pids)
    while still_alive and time.time() < deadline:
        still_alive = [p for p in child_pids if psutil.pid_exists(p)
                       and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]  # fmt: skip
        await asyncio.sleep(0.1)
    assert not still_alive, f"Child processes {still_alive} still alive after {timeout}s."


@dataclass
class ShutdownState:
    got_503: bool = False
    got_500: bool = False
    requests_after_sigterm: int = 0
    aborted_requests: int = 0
    connection_errors: int = 0
    inflight_requests: int = 0
    stop_requesting: bool = False
    errors: list[str] = field(default_factory=list)


async def _concurrent_request_loop(client, state, sigterm_sent=None, concurrency=10):
    async def single_request():
        while not state.stop_requesting:
            try:
                state.inflight_requests += 1
                response = await client.completions.create(
                    model=MODEL_NAME, prompt="Write a story: ", max_tokens=200
                )
                if sigterm_sent is not None and sigterm_sent.is_set():
                    state.requests_after_sigterm += 1
                if any(choice.finish_reason == "abort" for choice in response.choices):
                    state.aborted_requests += 1
            except openai.APIStatusError as e:
                if e.status_code == 503:
                    state.got_503 = True
                elif e.status_code == 500:
                    state.got_500 = True
                else:
                    state.errors.append(f"API error: {e}")
            except openai.APIConnectionError:
                state.connection_errors += 1
                if sigterm_sent is not None and sigterm_sent.is_set():
                    break
            except Exception as e:
                state.errors.append(f"Unexpected error: {e}")
                break
            finally:
                state.inflight_requests -= 1
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(single_request()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for t in tasks:
            t.cancel()


def test_shutdown_on_engine_failure(servers):
    """The server process terminated: API calls fail, the process exits. (vLLM starts this
    one by hand and polls until it answers; the pooled server answers already.)"""
    remote = servers["failure"]
    proc = remote.proc

    async def main():
        client = remote.get_async_client(timeout=10)
        await client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=1)
        proc.terminate()
        await asyncio.sleep(1)
        with pytest.raises((openai.APIConnectionError, openai.APIStatusError)):
            await client.completions.create(model=MODEL_NAME, prompt="fail", max_tokens=1)
        await client.aclose()

    asyncio.run(main())
    assert proc.wait(timeout=_PROCESS_EXIT_TIMEOUT) is not None


def test_wait_timeout_completes_requests(servers):
    """Drain: new requests rejected, in-flight requests complete."""
    remote = servers["drain"]
    proc = remote.proc
    child_pids = _get_child_pids(proc.pid)

    async def main():
        client = remote.get_async_client()
        state, sigterm_sent = ShutdownState(), asyncio.Event()
        task = asyncio.create_task(_concurrent_request_loop(client, state, sigterm_sent))
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        sigterm_sent.set()
        try:
            await asyncio.wait_for(task, timeout=_SHUTDOWN_DETECTION_TIMEOUT)
        except asyncio.TimeoutError:
            pass
        finally:
            state.stop_requesting = True
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert state.requests_after_sigterm > 0, state
        assert state.got_503 or state.got_500 or state.connection_errors > 0, state
        await _assert_children_cleaned_up(child_pids)

    asyncio.run(main())


@pytest.mark.parametrize("wait_for_engine_idle", [0.0, 2.0])
def test_abort_timeout_exits_quickly(servers, wait_for_engine_idle):
    remote = servers[f"abort_{wait_for_engine_idle:.0f}"]
    proc = remote.proc
    child_pids = _get_child_pids(proc.pid)
    if wait_for_engine_idle > 0:
        client = remote.get_client()
        for _ in range(2):
            client.completions.create(model=MODEL_NAME, prompt="Test request: ",
                                      max_tokens=10)  # fmt: skip
        client.close()
        time.sleep(wait_for_engine_idle)
    start_time = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=4.0)
    except subprocess.TimeoutExpired:
        pytest.fail("Process did not exit after SIGTERM with abort timeout")
    exit_time = time.time() - start_time
    assert exit_time < 4.1, f"Default shutdown took too long: {exit_time:.1f}s"
    assert proc.returncode in (0, -15, None), f"Unexpected: {proc.returncode}"
    asyncio.run(_assert_children_cleaned_up(child_pids))


def test_wait_timeout_with_short_duration(servers):
    wait_timeout = 3  # conftest: the "short" server's --shutdown-timeout
    remote = servers["short"]
    proc = remote.proc

    async def main():
        client = remote.get_async_client()
        state = ShutdownState()
        task = asyncio.create_task(_concurrent_request_loop(client, state, concurrency=3))
        await asyncio.sleep(0.5)
        start_time = time.time()
        proc.send_signal(signal.SIGTERM)
        max_wait = wait_timeout + 15
        while proc.poll() is None and time.time() - start_time < max_wait:
            await asyncio.sleep(0.1)
        exit_time = time.time() - start_time
        state.stop_requesting = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert proc.poll() is not None, f"Process did not exit within {max_wait}s"
        assert exit_time < wait_timeout + 10, f"Took too long to exit ({exit_time:.1f}s)"
        assert proc.returncode in (0, -15, None)

    asyncio.run(main())


def test_abort_timeout_fails_inflight_requests(servers):
    remote = servers["inflight"]
    proc = remote.proc

    async def main():
        client = remote.get_async_client(timeout=_ABORT_CLIENT_TIMEOUT)
        state, sigterm_sent = ShutdownState(), asyncio.Event()
        task = asyncio.create_task(_concurrent_request_loop(client, state, sigterm_sent))
        deadline = time.time() + _INFLIGHT_REQUEST_START_TIMEOUT
        while state.inflight_requests == 0 and time.time() < deadline:
            await asyncio.sleep(0.1)
        assert state.inflight_requests > 0
        proc.send_signal(signal.SIGTERM)
        sigterm_sent.set()
        try:
            await asyncio.wait_for(task, timeout=5)
        except asyncio.TimeoutError:
            pass
        finally:
            state.stop_requesting = True
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert (state.aborted_requests > 0 or state.connection_errors > 0
                or state.got_500 or state.got_503), state  # fmt: skip
        start_time = time.time()
        while proc.poll() is None and time.time() - start_time < 10:
            await asyncio.sleep(0.1)
        assert time.time() - start_time < 10

    asyncio.run(main())


def test_request_rejection_during_shutdown(servers):
    remote = servers["reject"]
    proc = remote.proc

    async def main():
        client = remote.get_async_client()
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        rejected_count = 0
        for _ in range(10):
            try:
                await client.completions.create(model=MODEL_NAME, prompt="Hello",
                                                max_tokens=10)  # fmt: skip
            except (openai.APIStatusError, openai.APIConnectionError):
                rejected_count += 1
            await asyncio.sleep(0.1)
        assert rejected_count > 0, f"{rejected_count} of 10 rejected"

    asyncio.run(main())
