import pytest

from labsupport import wire
from labsupport.scenarios.client_gone_gpu_still_busy import rounds

SMALL = rounds.Workload(
    leaving=3,
    leave_after_tokens=3,
    leaving_max_tokens=120,
    staying=2,
    staying_max_tokens=8,
)


async def not_a_generator(handle):
    return None


@pytest.fixture(scope="module")
def release_rounds():
    """The release's handler behind each gateway, on one server (counters carry over)."""
    with rounds.serve(rounds.RELEASE) as srv:
        return {gw: rounds.run_round(srv, SMALL, label=gw, gateway=gw) for gw in ("close", "read")}


def test_behind_a_gateway_that_closes_the_server_sees_clients_leave(release_rounds):
    r = release_rounds["close"]
    assert r.label == "close" and r.gateway == "close" and r.device in ("cpu", "cuda")
    assert [(c.status, c.tokens) for c in r.leaving] == [("client_disconnect", 3)] * 3
    assert r.complete_streams == 2
    assert r.delta("srelab:client_disconnects_total") == 3
    assert r.delta("vllm:request_success_total", finished_reason="abort") == 0
    assert r.running_after_clients_left == 3 and r.server_streams_after_clients_left == 0
    assert (
        r.kv_blocks_after_clients_left > 0
        and r.gauge("srelab:kv_cache_blocks_used", at="idle") == 0
    )
    assert r.generated_tokens == 3 * 120 + 2 * 8 and r.delivered_tokens == 3 * 3 + 2 * 8
    assert r.busy_after_clients_left_s > 0.1
    gone = [e for e in r.gateway_log if e["status"] == 499]
    assert len(gone) == 3  # a loaded machine notices a hang-up a few tokens late, not 100
    assert all(3 <= e["tokens_to_client"] <= e["tokens_from_upstream"] <= 30 for e in gone)
    done = [
        e for e in r.gateway_log if e["request"] == "POST /v1/completions" and e["status"] == 200
    ]
    assert [(e["tokens_to_client"], e["tokens_from_upstream"]) for e in done] == [(8, 8)] * 2
    assert r.samples and max(s[1] for s in r.samples) >= 3 and max(s[5] for s in r.samples) >= 3
    assert "3 clients left after 3 tokens" in r.describe()


def test_behind_a_gateway_that_reads_on_the_server_sees_nobody_leave(release_rounds):
    r = release_rounds["read"]
    assert [c.status for c in r.leaving] == ["client_disconnect"] * 3
    assert r.delta("srelab:client_disconnects_total") == 0  # it streamed every token
    assert r.delta("srelab:wasted_decode_steps_total") == 0  # so its own counter sees nothing
    assert r.running_after_clients_left == 3 and r.server_streams_after_clients_left == 3
    gone = [e for e in r.gateway_log if e["status"] == 499]
    assert len(gone) == 3 and all(e["tokens_from_upstream"] == 120 for e in gone)
    assert all(e["tokens_to_client"] <= 30 for e in gone)
    assert r.generated_per_delivered > 10


def test_a_round_is_data_and_its_counters_are_deltas(release_rounds):
    r = release_rounds["read"]
    back = wire.loads(wire.dumps(r))
    assert back == r and isinstance(back.workload, rounds.Workload)
    assert r.delta("vllm:generation_tokens_total") == r.generated_tokens
    first = release_rounds["close"]
    assert r.metrics_before != first.metrics_before  # one server: cumulative counters


def test_a_notebook_function_runs_in_the_server():
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
    r = rounds.run_stack(namespace["handler"], SMALL, gateway="close", show_progress=False)
    assert r.delta("vllm:request_success_total", finished_reason="abort") == 3
    assert r.running_after_clients_left == 0 and r.kv_blocks_after_clients_left == 0
    assert r.generated_tokens - r.delivered_tokens < 3 * 24 and r.complete_streams == 2


def test_a_handler_that_is_not_a_generator_fails_its_streams_cleanly():
    only_staying = rounds.Workload(leaving=0, staying=2, staying_max_tokens=8)
    r = rounds.run_stack(f"{__name__}:not_a_generator", only_staying, gateway="",
                         show_progress=False)  # fmt: skip
    assert r.gateway == "" and r.gateway_log == [] and r.leaving == []
    assert [c.status for c in r.staying] == ["truncated"] * 2
    assert all("stream handler failed" in (c.error or "") for c in r.staying)
    assert r.gauge("srelab:kv_cache_blocks_used", at="idle") == 0


def test_workload_says_what_it_runs():
    assert SMALL.describe() == (
        "3 clients ask for 120 tokens and leave after 3; 2 ask for 8 tokens and read them all"
    )
    assert rounds.Workload(leaving=1, staying=0).describe().endswith("leave after 4")
    assert 0.5 < SMALL.expected_s() < 2.0
