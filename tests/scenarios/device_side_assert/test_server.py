import asyncio
import json

import httpx
import torch

from labsupport.scenarios.device_side_assert import server
from labsupport.serving.engine import Engine
from labsupport.serving.requests import SamplingParams


def test_carry_on_fails_the_step_and_the_engine_goes_on():
    engine = Engine.build(device="cpu")
    server.carry_on(engine)
    engine.add_request([1, 2, 3], SamplingParams(max_tokens=2))
    real_run = engine.runner.run
    engine.runner.run = lambda *a: (_ for _ in ()).throw(RuntimeError("boom"))
    assert engine.step() is True  # it raised inside and carried on
    assert engine.counters.finished["error"] == 1 and not engine.scheduler.running
    engine.runner.run = real_run
    engine.add_request([4, 5], SamplingParams(max_tokens=2))
    while engine.step():
        pass
    assert engine.counters.finished["length"] == 1


def test_livez_answers_from_device_alive_and_counts_an_exception_as_dead():
    assert server.DeviceLiveness(lambda d: True, "cpu").answer("livez", "", 0.0)[0] == 200
    assert server.DeviceLiveness(lambda d: 1, "cpu").answer("livez", "", 0.0)[0] == 503
    status, body = server.DeviceLiveness(lambda d: 1 / 0, "cpu").answer("livez", "", 0.0)
    assert status == 503 and "ZeroDivisionError" in body["error"]
    assert server.DeviceLiveness(lambda d: True, "cpu").answer("readyz", "", 0.0)[0] == 404


async def _echo(scope, receive, send):
    message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": message.get("body", b"")})


def test_the_check_answers_before_the_server_and_passes_the_rest_through():
    def check(body, vocab):
        if 999 in body.get("prompt", []):
            return {"error": {"message": "no 999", "type": "BadRequestError", "code": 400}}
        return None

    app = server._validating(_echo, check, 512)

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ok = await client.post("/v1/completions", json={"prompt": [1, 2]})
            refused = await client.post("/v1/completions", json={"prompt": [999]})
            other = await client.post("/v1/other", json={"prompt": [999]})
            return ok, refused, other

    ok, refused, other = asyncio.run(go())
    assert ok.status_code == 200 and json.loads(ok.content) == {"prompt": [1, 2]}
    assert refused.status_code == 400 and refused.json()["error"]["message"] == "no 999"
    assert other.status_code == 200  # only completion routes are checked


def test_the_engine_thread_runs_on_the_stand_in_on_a_cpu():
    engine = Engine.build(device="cpu")
    server._on_device(engine)
    engine.start()
    try:
        assert engine.device == torch.device("cpu") and engine.is_alive()
    finally:
        engine.stop()
