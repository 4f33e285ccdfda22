from labsupport.gateway.clients import ClientResult
from labsupport.scenarios.api_key_abuse import evidence, plots
from labsupport.scenarios.api_key_abuse.bursts import Burst, BurstResult
from labsupport.scenarios.api_key_abuse.runs import Rounds, victim_ttfts_ms
from labsupport.scenarios.api_key_abuse.stack import Round, _gauges

METRICS = """\
vllm:num_requests_running{model_name="tiny"} 3.0
vllm:num_requests_waiting{model_name="tiny"} 2.0
vllm:kv_cache_usage_perc{model_name="tiny"} 0.5
vllm:num_preemptions_total{model_name="tiny"} 4.0
vllm:generation_tokens_total{model_name="tiny"} 100.0
"""


def _entry(key, start, end, status=200, tokens=10):
    return {"request_id": "x", "key": key, "status": status, "start_s": start, "end_s": end,
            "ttft_ms": 30.0 if status == 200 else None, "prompt_tokens": 20, "max_tokens": 16,
            "completion_tokens": tokens, "upstream": "engine", "attempts": [],
            "retry_after_s": None, "reason": "", "client_gone": False}  # fmt: skip


def _round() -> Round:
    results = [
        ClientResult("sk-a", "sk-a", 200, "ok", 0.1, 0.05, 0.3, 10, 16, 20),
        ClientResult("sk-a", "sk-a", 200, "cut", 1.2, None, 2.0, 0, 16, 20),
        ClientResult("sk-b", "sk-b", 429, "http_429", 1.5, None, 0.01, 0, 16, 20, 2.0),
        ClientResult("sk-b", "sk-b", 200, "ok", 1.6, 0.9, 1.3, 200, 230, 20),
    ]
    log = [_entry("sk-a", 0.1004, 0.4), _entry("sk-b", 1.5, 1.51, status=429),
           _entry("sk-b", 1.6, 2.9, tokens=200)]  # fmt: skip
    return Round("busy", "as deployed", 3.0, results, log, "", METRICS,
                 [(0.1, 3.0, 2.0, 0.5, 4.0)])  # fmt: skip


def test_the_access_view_keeps_the_documented_fields_rounded():
    view = evidence.access_view(_round())
    assert list(view[0]) == list(evidence.LOG_FIELDS)
    assert view[0]["start_s"] == 0.1 and view[1]["ttft_ms"] is None


def test_tables_per_key_and_for_the_engine():
    text = evidence.per_key(_round())
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["key", "requests", "429"]
    assert lines[1].split()[:3] == ["sk-a", "2", "0"] and lines[2].split()[:3] == ["sk-b", "2", "1"]
    engine = evidence.engine(_round())
    assert "vllm:kv_cache_usage_perc    max 0.50" in engine
    assert "vllm:num_preemptions_total  +4" in engine


def test_gauges_sum_every_label_set():
    g = _gauges(METRICS + 'vllm:num_requests_running{model_name="other"} 1.0\n')
    assert g == {"running": 4.0, "waiting": 2.0, "kv": 0.5, "preemptions": 4.0}


def test_victims_ttft_counts_a_stream_without_a_token_as_its_wait():
    rnd = _round()
    assert victim_ttfts_ms(rnd, ["sk-a"]) == [50.0, 2000.0]
    assert victim_ttfts_ms(rnd, ["sk-a"], since_s=1.0) == [2000.0]
    rounds = Rounds(0, "sk-b", 1.0, {"busy": rnd})
    assert rounds.victims == ["sk-a"] and rounds.victims_p95_ms("busy") == 2000.0


def test_bursts_count_admissions_from_the_log_and_refusals_from_the_clients():
    rnd = _round()
    b = BurstResult("x", rnd.results, rnd.log, 2)
    assert b.admitted() == 2 and b.admitted("sk-b") == 1 and b.refused("sk-b") == 1
    from labsupport.gateway.clients import Traffic

    assert Burst("x", {}, (Traffic("k", sessions=5, requests=2),)).clients == 10


def test_plots_draw_each_round_and_each_key():
    fig = plots.rounds({"quiet": _round(), "busy": _round()})
    assert len(fig.axes) == 4  # two panels, each with its KV axis
    fig = plots.streams_by_key(_round(), highlight="sk-b")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["sk-a", "sk-b"]
