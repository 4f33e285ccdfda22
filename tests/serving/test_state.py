import asyncio

from labsupport.serving.engine import Engine
from labsupport.serving.faults import FaultController
from labsupport.serving.requests import SamplingParams
from labsupport.serving.state import ServerState


def test_a_group_of_engine_requests_is_one_api_request():
    state = ServerState(Engine.build().start(), faults=FaultController())
    try:

        async def main():
            handles = [state.engine.submit([1, 2], SamplingParams(max_tokens=200)) for _ in "ab"]
            state.begin(handles)
            assert state.in_flight == 1 and len(state.handles) == 2
            state.end(list(handles))  # another list: not this request's group
            assert state.in_flight == 1
            state.end(handles)  # unfinished: the client is gone, both are aborted
            assert state.in_flight == 0 and await state.wait_idle(0.1)
            return [(await h.collect())[-1].finish_reason for h in handles]

        assert asyncio.run(main()) == ["abort", "abort"]
        text = state.metrics.render()[0].decode()
        assert "srelab:client_disconnects_total 1.0" in text  # one client, two samples
    finally:
        state.engine.stop()
