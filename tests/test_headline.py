import json
import math

from labsupport import headline


def test_ratio_lower_is_better():
    h = headline.record(
        "290", metric="p99", before=100, after=20, unit="ms", print_fn=lambda *_: None
    )
    assert h["ratio"] == 5


def test_ratio_higher_is_better_and_zero():
    h = headline.record(
        "1",
        metric="x",
        before=10,
        after=40,
        unit="r/s",
        higher_is_better=True,
        print_fn=lambda *_: None,
    )
    assert h["ratio"] == 4
    h = headline.record("1", metric="x", before=3, after=0, unit="n", print_fn=lambda *_: None)
    assert math.isinf(h["ratio"])


def test_written_to_the_file_named_by_the_env(tmp_path, monkeypatch):
    out = tmp_path / "h.json"
    monkeypatch.setenv(headline.ENV_VAR, str(out))
    headline.record(
        "290", metric="a", before=2, after=1, unit="ms", print_fn=lambda *_: None, pauses=3
    )
    headline.record("290", metric="b", before=4, after=1, unit="ms", print_fn=lambda *_: None)
    data = json.loads(out.read_text())
    assert [d["metric"] for d in data] == ["a", "b"]
    assert data[0]["details"] == {"pauses": 3}


def test_infinite_ratio_is_strict_json(tmp_path, monkeypatch):
    out = tmp_path / "h.json"
    monkeypatch.setenv(headline.ENV_VAR, str(out))
    lines = []
    headline.record("286", metric="wasted", before=5, after=0, unit="steps", print_fn=lines.append)
    text = out.read_text()
    assert "Infinity" not in text
    data = json.loads(text)
    assert data[0]["ratio"] is None and data[0]["ratio_infinite"] is True
    assert "infinitely better" in lines[0]
