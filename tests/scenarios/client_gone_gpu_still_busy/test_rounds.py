import asyncio

from labsupport.serving import disconnects

SMALL = disconnects.Workload(
    leaving=3, leave_after_tokens=3, leaving_max_tokens=160, staying=2, staying_max_tokens=8
)


async def cancelling(handle):
    """A correct stream handler, importable by the server child as module:function."""
    try:
        async for out in handle.stream():
            yield out
    except (asyncio.CancelledError, GeneratorExit):
        handle.abort()
        raise


async def not_a_generator(handle):
    return None


def test_naive_handler_decodes_for_nobody():
    run = disconnects.run_workload(disconnects.naive_stream_outputs, SMALL, label="naive")
    assert run.label == "naive" and run.device in ("cpu", "cuda")
    assert [r.status for r in run.leaving] == ["client_disconnect"] * 3
    assert [r.tokens for r in run.leaving] == [3] * 3
    assert run.complete_streams == 2 and run.disconnects == 3 and run.aborted == 0
    assert run.running_after_clients_left == 3 and run.kv_blocks_after_clients_left > 0
    assert run.wasted_steps >= 0.8 * 3 * (160 - 3)  # to max_tokens (the server notices late)
    assert run.kv_blocks_idle == 0  # freed at max_tokens, not before
    assert run.generated_tokens == 3 * 160 + 2 * 8 and run.delivered_tokens == 3 * 3 + 2 * 8
    assert run.busy_after_clients_left_s > 0.1
    assert run.samples and max(s[1] for s in run.samples) >= 3
    problems = run.problems()
    assert any("still ran 3 requests" in p for p in problems), problems
    assert "saw 3 clients leave" in run.describe()


def test_cancelling_handler_leaves_no_work_behind():
    run = disconnects.run_workload(cancelling, SMALL)
    assert run.problems() == [], run.describe()
    assert run.wasted_steps == 0 and run.aborted == 3 and run.disconnects == 3
    assert run.generated_per_delivered < 1.5


def test_a_notebook_function_is_sent_by_code():
    namespace = {"__name__": "__main__"}
    exec(
        "import asyncio\n"
        "async def handler(handle):\n"
        "    try:\n"
        "        async for out in handle.stream():\n"
        "            yield out\n"
        "    finally:\n"
        "        if not handle.finished:\n"
        "            handle.abort()\n",
        namespace,
    )
    assert namespace["handler"].__module__ == "__main__"
    run = disconnects.run_workload(namespace["handler"], SMALL)
    assert run.problems() == [], run.describe()


def test_behind_a_proxy_that_ignores_aborts_the_server_never_knows():
    run = disconnects.run_workload(cancelling, SMALL, behind_proxy=True)
    assert [r.status for r in run.leaving] == ["client_disconnect"] * 3
    assert run.disconnects == 0 and run.wasted_steps == 0  # the server saw readers to the end
    assert run.running_after_clients_left == 3 and run.generated_per_delivered > 3


def test_rounds_share_a_server_and_counters_accumulate():
    with disconnects.serve(disconnects.naive_stream_outputs) as srv:
        first = disconnects.run_round(srv, SMALL)
        second = disconnects.run_round(srv, SMALL)
    assert first.metrics_idle != second.metrics_before or first.wasted_steps > 0
    assert second.delta("srelab:client_disconnects_total") == 3
    assert second.delta("srelab:client_disconnects_total", until="left") == 3


def test_a_handler_that_is_not_a_generator_fails_its_streams_cleanly():
    only_staying = disconnects.Workload(leaving=0, staying=2, staying_max_tokens=8)
    run = disconnects.run_workload(f"{__name__}:not_a_generator", only_staying)
    assert [r.status for r in run.staying] == ["truncated"] * 2
    assert all("stream handler failed" in (r.error or "") for r in run.staying)
    assert run.kv_blocks_idle == 0 and run.aborted == 2  # the server aborted them itself
