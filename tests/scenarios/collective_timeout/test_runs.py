"""Lab 297's runs: settings read from a dict, times read from a run, plots drawn."""

import pytest

from labsupport.distributed.launch import JobRun, RankRun
from labsupport.scenarios.collective_timeout import plots, runs


def _rank(rank, stamps, *, ended, killed=False, code=1, dumped_at=None):
    progress = [(t, {"step": i}) for i, t in enumerate(stamps)]
    return RankRun(rank, None if killed else code, killed, ended, "run", None, "", None,
                   [{}] if dumped_at else [], dumped_at, progress, "")  # fmt: skip


def test_settings_of_a_dict_check_their_types():
    s = runs.Settings.of({"timeout_s": 2, "env": {"TORCH_FR_BUFFER_SIZE": 10}})
    assert s.timeout_s == 2.0 and s.env == {"TORCH_FR_BUFFER_SIZE": "10"}
    assert runs.Settings.of({}).timeout_s is None
    for bad in ([], {"timeout_s": "2"}, {"timeout_s": True}, {"env": {1: "x"}}, {"env": ["x"]}):
        with pytest.raises(TypeError):
            runs.Settings.of(bad)
    for bad in ({"timeout_s": 0}, {"timeout_s": float("inf")}):
        with pytest.raises(ValueError):
            runs.Settings.of(bad)


def test_stall_report_and_slowest_wait_are_read_from_the_progress():
    reported = JobRun(2, 30, 2.0, 6.0, False, True, {}, [
        _rank(0, [1.0, 1.1, 2.0], ended=4.6, dumped_at=4.3),
        _rank(1, [1.0, 1.2, 2.05], ended=4.7, dumped_at=4.35),
    ])  # fmt: skip
    assert runs.stall_s(reported) == 2.05 and runs.report_s(reported) == 4.7
    assert runs.slowest_wait_s(reported) == 0.9
    assert runs.steps_done(reported) == {0: 3, 1: 3}
    silent = JobRun(2, 30, None, 9.0, True, False, {}, [
        _rank(0, [1.0], ended=9.0, killed=True), _rank(1, [1.0], ended=9.0, killed=True)
    ])  # fmt: skip
    assert runs.report_s(silent) is None and runs.slowest_wait_s(silent) == 0.0
    no_dump = JobRun(2, 30, 2.0, 5.0, False, False, {}, [
        _rank(0, [1.0], ended=4.0), _rank(1, [1.0], ended=4.0)
    ])  # fmt: skip
    assert runs.report_s(no_dump) is None, "exiting without the evidence is not a report"
    fig = plots.comparison(silent, reported, titles=("before", "after"))
    assert len(fig.axes) == 2 and len(plots.timeline(reported, title="x").axes) == 1


def test_the_absent_interface_is_not_on_this_machine():
    import os

    name = runs.absent_interface()
    assert name in runs.ABSENT_INTERFACES and not os.path.exists(f"/sys/class/net/{name}")
