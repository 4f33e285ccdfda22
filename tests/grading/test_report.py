from types import SimpleNamespace

from labsupport.grading import report


class Crash:
    def __init__(self, message):
        self.reprcrash = SimpleNamespace(message=message)


def test_hint_is_the_assertion_message_without_introspection():
    text = "AssertionError: p99 only improved 1.2x; freeze the heap\nassert 1.2 >= 3"
    assert report.hint_from(Crash(text)) == "p99 only improved 1.2x; freeze the heap"


def test_hint_for_stub_and_timeout_and_fail():
    stub = "NotImplementedError: Exercise f: write your code here (see the docstring)"
    assert report.hint_from(Crash(stub)).startswith("not implemented yet - Exercise f")
    timeout = "Failed: Timeout (>120.0s) from pytest-timeout."
    assert report.hint_from(Crash(timeout)).startswith("timed out")
    assert report.hint_from(Crash("Failed: cannot grade x: y")) == "cannot grade x: y"
    assert report.hint_from(("f.py", 3, "Skipped: needs an NVIDIA GPU")) == "needs an NVIDIA GPU"


def _rep(when, outcome, message=None):
    return SimpleNamespace(
        when=when,
        duration=0.5,
        skipped=outcome == "skipped",
        failed=outcome == "failed",
        passed=outcome == "passed",
        longrepr=Crash(message) if message else None,
    )


def test_phases_fold_into_one_verdict():
    e = report.new_entry("tests/labs/test_1.py::test_fix_works")
    assert e["check"] == "fix_works" and e["outcome"] == "not run"
    for rep in (_rep("setup", "passed"), _rep("call", "passed"), _rep("teardown", "passed")):
        report.update_entry(e, rep)
    assert e["outcome"] == "passed" and e["duration_s"] == 1.5
    e = report.new_entry("x::test_leaky")
    for rep in (
        _rep("setup", "passed"),
        _rep("call", "passed"),
        _rep("teardown", "failed", "Failed: left behind after the test: port 1"),
    ):
        report.update_entry(e, rep)
    assert e["outcome"] == "failed" and "left behind" in e["hint"]


def test_all_passed_needs_a_pass_and_no_failure():
    assert not report.all_passed([])
    assert not report.all_passed([{"outcome": "skipped"}])
    assert report.all_passed([{"outcome": "passed"}, {"outcome": "skipped"}])
    assert not report.all_passed([{"outcome": "passed"}, {"outcome": "failed"}])


def test_table_and_verdict():
    rows = [
        {"check": "a", "outcome": "passed", "hint": "", "duration_s": 1},
        {"check": "b", "outcome": "failed", "hint": "look at x", "duration_s": 2},
    ]
    table = report.render_table(rows)
    assert "PASS" in table and "FAIL" in table and "look at x" in table
    assert "1 of 2 checks failed" in report.verdict_line(rows)
    assert "visible checks passed" in report.verdict_line(rows[:1])


def test_attempts_count_per_lab_and_target(tmp_path, monkeypatch):
    monkeypatch.setenv("SRELAB_STATE_DIR", str(tmp_path))
    assert report.next_attempt(290, "a.ipynb") == 1
    assert report.next_attempt(290, "a.ipynb") == 2
    assert report.next_attempt(276, "a.ipynb") == 1
