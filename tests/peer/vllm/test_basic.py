"""Ported from vLLM tests/entrypoints/openai/basic/test_basic.py at
35daaf4dd032917896c665abc01dedd7bb4a0ad8, run against `srelab serve`.

Each case names its original. Out of scope (docs/peer_scope.md): the
`--disable-frontend-multiprocessing` parametrization (no separate API process here) and
test_server_load (`--enable-server-load-tracking`, a vLLM-only flag and endpoint).
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus

import httpx
import pytest

from . import openai_shim as openai
from .conftest import MODEL_NAME


def test_show_version(server):
    """test_show_version: GET /version answers {"version": ...} (ours: the package's)."""
    response = httpx.get(server.url_for("version"), trust_env=False)
    response.raise_for_status()
    assert set(response.json()) == {"version"} and response.json()["version"]


def test_check_health(server):
    """test_check_health."""
    response = httpx.get(server.url_for("health"), trust_env=False)
    assert response.status_code == HTTPStatus.OK


def test_request_cancellation(server):
    """test_request_cancellation: flood with requests that time out on the client, then the
    server must still answer quickly. vLLM sends 200 chats of 10000 tokens (min_tokens 10000,
    --max-model-len 10100); here 200 of 1900 (plus the 49-token chat prompt) into a 2048-token
    context."""
    chat_input = [{"role": "user", "content": "Write a long story"}]

    async def main():
        client = server.get_async_client(timeout=0.5)
        tasks = [
            asyncio.create_task(
                client.chat.completions.create(
                    messages=chat_input,
                    model=MODEL_NAME,
                    max_tokens=1900,
                    extra_body={"min_tokens": 1900},
                )
            )
            for _ in range(200)
        ]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.ALL_COMPLETED)
        await client.aclose()
        # all sent and timed out (no 400s hiding behind the timeouts)
        assert len(pending) == 0
        for d in done:
            with pytest.raises(openai.APITimeoutError):
                d.result()
        # had the server not cancelled the others, it could not answer this in time
        client = server.get_async_client(timeout=5)
        response = await client.chat.completions.create(
            messages=chat_input, model=MODEL_NAME, max_tokens=10
        )
        await client.aclose()
        assert len(response.choices) == 1

    asyncio.run(main())


def test_request_wrong_content_type(server):
    """test_request_wrong_content_type: a form-encoded body is refused."""
    client = server.get_client()
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            messages=[{"role": "user", "content": "Write a long story"}],
            model=MODEL_NAME,
            max_tokens=10000,
            extra_headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    client.close()


def test_health_check_engine_dead_error(servers):
    """test_health_check_engine_dead_error: a dead engine makes /health answer 503. vLLM's
    test mocks the engine client; here the engine really dies (an out-of-vocabulary id
    reaching the model with input validation off: the fault of lab 285)."""
    with httpx.Client(base_url=servers["dead"].url_root, timeout=10, trust_env=False) as c:
        body = {"prompt": [1, 600], "max_tokens": 2}
        assert c.post("/v1/completions", json=body).status_code == 500
        for _ in range(100):  # the engine thread dies a moment after the failed step
            if c.get("/health").status_code == 503:
                break
            time.sleep(0.05)
        assert c.get("/health").status_code == 503
