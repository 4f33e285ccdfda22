from labsupport.gateway.proxy import Attempt, EventCounter


def _event(obj) -> bytes:
    import json

    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def test_counts_token_events_across_chunk_boundaries_and_the_end():
    c = EventCounter()
    data = _event({"choices": [{"text": "a"}]}) + _event({"choices": [{"text": "b"}]})
    assert c.feed(data[:10]) == 0  # half an event counts nothing yet
    assert c.feed(data[10:]) == 2
    assert c.feed(_event({"choices": [{"text": ""}]})) == 0  # an empty text is not a token
    assert c.feed(_event({"choices": [{"delta": {"content": "x"}}]})) == 1  # chat's shape
    assert not c.done
    assert c.feed(b"data: [DONE]\n\n") == 0 and c.done and c.tokens == 3


def test_an_error_event_is_kept_and_junk_is_ignored():
    c = EventCounter()
    c.feed(b": a comment\n\ndata: not json\n\n")
    c.feed(_event({"error": {"message": "engine died", "code": 500}}))
    assert c.error == "engine died" and c.tokens == 0 and not c.done


def test_an_attempt_reports_milliseconds():
    a = Attempt("engine", "ok", 200, ttft_s=0.0123456)
    assert a.ttft_ms == 12.35
    assert Attempt("engine", "timeout", 0).ttft_ms is None
