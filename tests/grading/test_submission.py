"""The submission process: learner code answers calls from its own contained process."""

import re
import time

import psutil
import pytest

from labsupport import contain
from labsupport.grading import flags, hygiene
from labsupport.grading.submission import (
    LearnerException,
    MissingName,
    Submission,
    SubmissionError,
)

CELLS = """# ---- notebook cell 4 ----
import itertools, os


def double(x):
    return 2 * x


def raises():
    return {}["missing"]


def stub():
    raise NotImplementedError("Exercise stub: write your code here")


def spin_in_c():
    return sum(itertools.count())


def greedy():
    return bytearray(20 * 2**30)


def leave_sleepers():
    for _ in range(10):
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "600"])
            os._exit(0)
    return "done"


def not_data():
    return object()


def leave():
    os._exit(0)


def peek():
    import sys
    return {k: repr(v)[:40] for k, v in sys._getframe(1).f_locals.items()}


def attribute_error():
    return os.nope


class Custom(Exception):
    pass


def custom():
    raise Custom("mine")
"""


@pytest.fixture(scope="module")
def sub():
    s = Submission(CELLS, "<your exercise cells, lab 999>")
    s.on_start, s.on_stop = hygiene.exempt, hygiene.unexempt  # lives for the module, on purpose
    s.start()
    yield s
    s.close()


def test_values_and_records_cross_as_data(sub):
    assert sub.call("double", (21,), {}) == 42
    assert sub.call("double", ((1, 2),), {}) == (1, 2, 1, 2)
    assert "double" in sub.names and "spin_in_c" in sub.names


def test_exceptions_come_back_with_their_type_and_line(sub):
    with pytest.raises(KeyError, match=r'cell 4, line 9: return \{\}\["missing"\]'):
        sub.call("raises", (), {})
    with pytest.raises(NotImplementedError, match="^Exercise stub"):
        sub.call("stub", (), {})
    with pytest.raises(LearnerException, match="Custom: mine"):
        sub.call("custom", (), {})
    with pytest.raises(MissingName):
        sub.call("nope", (), {})
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        sub.call("attribute_error", (), {})


def test_a_loop_in_c_is_stopped_from_outside_and_the_next_call_works(sub):
    start = time.monotonic()
    with pytest.raises(SubmissionError, match="timed out: your `spin_in_c` did not return"):
        sub.call("spin_in_c", (), {}, timeout_s=2)
    assert time.monotonic() - start < 10
    assert sub.call("double", (2,), {}) == 4


def test_memory_is_capped_with_a_hint_that_says_memory(sub):
    before = psutil.virtual_memory().available
    with pytest.raises(SubmissionError, match="ran out of memory"):
        sub.call("greedy", (), {})
    assert psutil.virtual_memory().available > before - 2 * 2**30
    assert sub.call("double", (3,), {}) == 6


def test_detached_processes_are_named_and_killed(sub):
    with pytest.raises(SubmissionError, match=r"left 10 process\(es\) running \(.*sleep 600"):
        sub.call("leave_sleepers", (), {})
    assert not contain.strays(sub.pid)
    assert not [
        p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "600"]
    ]


def test_what_is_not_data_or_an_exit_fails_clearly(sub):
    with pytest.raises(TypeError, match="must return data"):
        sub.call("not_data", (), {})
    with pytest.raises(SubmissionError, match="ended the grader's process"):
        sub.call("leave", (), {})
    assert sub.call("double", (5,), {}) == 10


def test_the_callers_frames_hold_nothing_and_reading_them_is_flagged(sub):
    flags.drain()
    leaked = sub.call("peek", (), {})
    assert not re.search(r"\b42\b", str(leaked)), leaked  # (an address may hold the digits)
    raised = flags.drain()
    assert any(f["kind"] == "frames" and "cell 4" in f["where"] for f in raised)


def test_loading_errors_are_one_line():
    with pytest.raises(SubmissionError, match="No module named 'no_such_module_xyz'"):
        Submission("import no_such_module_xyz\n", "<x>").start()
    with pytest.raises(SubmissionError, match="did not finish within 2 s"):
        Submission("while True:\n    pass\n", "<x>", load_timeout_s=2).start()


def test_the_standard_library_reading_frames_is_not_blamed_on_the_learner():
    cells = (
        "# ---- notebook cell 2 ----\nimport asyncio, logging\n\n\n"
        "def f():\n    logging.getLogger('x').warning('hi')\n    return 1\n"
    )
    flags.drain()
    with Submission(cells, "<your exercise cells, lab 998>") as s:
        s.on_start, s.on_stop = hygiene.exempt, hygiene.unexempt
        assert s.call("f", (), {}) == 1
    assert not [f for f in flags.drain() if f["kind"] == "frames"]


def test_what_a_library_does_while_being_imported_is_not_the_learners():
    cells = "# ---- notebook cell 2 ----\nimport torch\n\n\ndef f():\n    return 1\n"
    flags.drain()
    with Submission(cells, "<your exercise cells, lab 997>") as s:
        s.on_start, s.on_stop = hygiene.exempt, hygiene.unexempt
        assert s.call("f", (), {}) == 1
    assert not [f for f in flags.drain() if f["kind"] in ("native", "frames")]
