import asyncio

from labsupport.serving.requests import Heartbeat, RequestHandle, TokenOutput


class _Engine:
    def __init__(self):
        self.calls = []

    def abort_request(self, rid):
        self.calls.append(("abort", rid))

    def mark_client_gone(self, rid):
        self.calls.append(("gone", rid))


def test_handle_streams_until_the_final_output_and_can_end_itself():
    async def main():
        engine = _Engine()
        handle = RequestHandle(engine, asyncio.get_running_loop())
        handle.request_id = "r"
        handle.push(TokenOutput("r", 5, "x", False, None, 1, 1))
        got = []
        async for out in handle.stream():
            got.append(out.token_id)
            if len(got) == 1:
                handle.mark_client_gone()
                handle.abort(end_stream_now=True)  # a wedged engine would never answer
        return engine.calls, got, handle.finished

    calls, got, finished = asyncio.run(main())
    assert calls == [("gone", "r"), ("abort", "r")] and got == [5, None] and finished


def test_push_after_the_loop_closed_is_harmless():
    loop = asyncio.new_event_loop()
    handle = RequestHandle(_Engine(), loop)
    loop.close()
    handle.push(TokenOutput("r", None, "", True, "abort", 0, 0))
    assert handle.finished


def test_heartbeat_pending():
    hb = Heartbeat(3, 0.1, 9, 0.01, num_running=2, num_waiting=1, alive=True)
    assert hb.pending == 3 and hb.as_dict()["pending"] == 3
