"""The probe matrix: rows from the measured probes and from rules over the scrapes."""

import pytest

from labsupport.scenarios.port_open_but_not_serving import matrix
from labsupport.scenarios.port_open_but_not_serving.matrix import MatrixRun, Tick
from labsupport.serving.scrape import no_answer, synthetic


def _ticks(scrapes):
    ok = {name: True for name in matrix.PROBES}
    return [Tick(float(i), dict(ok), {}, s) for i, s in enumerate(scrapes)]


def _run():
    return MatrixRun(
        ["idle", "wedged_engine"],
        {
            "idle": _ticks([synthetic(5), synthetic(5), synthetic(5)]),
            "wedged_engine": _ticks(
                [synthetic(9, 2), no_answer(), synthetic(9, 2), synthetic(9, 2, 1)]
            ),
        },
    )


def test_rule_rows_are_computed_from_consecutive_scrapes():
    seen = []

    def rule(previous, current):
        seen.append(previous)
        steps = current.value("srelab:engine_steps_total")
        return (
            previous is None
            or not previous.ok
            or steps != previous.value("srelab:engine_steps_total")
        )

    m = _run().with_probe("frozen steps", rule)
    assert m.results("frozen steps", "idle") == [True, False, False]
    assert m.results("frozen steps", "wedged_engine") == [True, False, True, False]
    assert m.failure_rate(matrix.SCRAPE_ROW, "wedged_engine") == 0.25
    assert m.failure_rate("TCP connect", "idle") == 0.0
    assert seen[0] is None and "frozen steps" in m.probes and "frozen steps" not in _run().probes


def test_a_rule_that_raises_fails_its_row():
    def broken(previous, current):
        raise NotImplementedError

    assert _run().with_probe("broken", broken).failure_rate("broken", "idle") == 1.0


def test_pairs_skip_failed_scrapes_and_table_names_every_cell():
    m = _run()
    assert len(m.pairs("idle")) == 2 and len(m.pairs("wedged_engine")) == 1
    table = m.table()
    assert "engine wedged" in table and "fails  25%" in table and "passes" in table


@pytest.mark.timeout(90)
def test_live_matrix_tcp_and_health_miss_the_wedged_engine():
    m = matrix.run_matrix(["idle", "wedged_engine"], ticks=3)
    assert m.failure_rate("TCP connect", "wedged_engine") == 0.0
    assert m.failure_rate("HTTP /health", "wedged_engine") == 0.0
    assert m.failure_rate("1-token inference", "wedged_engine") == 1.0
    assert m.failure_rate("1-token inference", "idle") == 0.0
    earlier, later = m.pairs("wedged_engine")[0]
    assert earlier.value("srelab:engine_steps_total") == later.value("srelab:engine_steps_total")
    assert later.value("vllm:num_requests_running") > 0
    with pytest.raises(ValueError):
        matrix.run_matrix(["nope"])
