import pytest

from labsupport.grading import live


def test_latest_definition_wins_and_order_is_kept():
    history = [
        "",
        "import gc\ndef f():\n    return 1",
        "x = 3",
        "def g():\n    pass",
        "def f():\n    return 2",
    ]
    assert live.history_cells(history, ["f", "g"]) == [history[3], history[4]]


def test_cells_with_syntax_errors_are_skipped():
    assert live.history_cells(["def f(:", "def f():\n    pass"], ["f"]) == ["def f():\n    pass"]


def test_outside_a_notebook_check_says_what_to_run():
    with pytest.raises(RuntimeError, match="srelab check 290"):
        live.check("290")
