import asyncio

import pytest

from labsupport.serving import aio


def test_run_sync_without_a_loop_is_asyncio_run():
    assert aio.run_sync(lambda: asyncio.sleep(0, result=3)) == 3


def test_run_sync_works_inside_a_running_loop():
    async def inner():
        return aio.run_sync(lambda: asyncio.sleep(0, result=7))

    assert asyncio.run(inner()) == 7


def test_run_sync_reraises_in_the_caller():
    async def divide():
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        aio.run_sync(divide)

    async def inner():
        aio.run_sync(divide)

    with pytest.raises(ZeroDivisionError):
        asyncio.run(inner())
