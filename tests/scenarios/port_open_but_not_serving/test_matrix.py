"""The probe matrix: rows from the evidence and from rules over the scrapes; one live run."""

import pytest

from labsupport.scenarios import port_open_but_not_serving as scenario
from labsupport.scenarios.port_open_but_not_serving import matrix
from labsupport.scenarios.port_open_but_not_serving.evidence import Evidence
from labsupport.scenarios.port_open_but_not_serving.matrix import MatrixRun
from labsupport.serving.scrape import no_answer, synthetic


def _ev(scrapes, health, runnable_per_s=0.1):
    n = len(scrapes)
    cpu = [(float(i), 0.05 * i, runnable_per_s * i) for i in range(n + 1)]
    ok = [h is not None for h in health]
    return Evidence(1.0, [True] * n, list(health), ok, list(scrapes), cpu)


def run():
    """Two hand-made columns (shared with test_plots)."""
    return MatrixRun(
        ["idle", "wedged_engine"],
        {
            "idle": _ev([synthetic(5), synthetic(5), synthetic(5)], [200] * 3),
            "wedged_engine": _ev(
                [synthetic(9, 2), no_answer(), synthetic(9, 2), synthetic(9, 2, 1)],
                [200, None, 200, 200],
                runnable_per_s=1.0,
            ),
        },
    )


def test_rule_rows_are_computed_from_consecutive_scrapes():
    seen = []

    def rule(previous, current):
        seen.append(previous)
        name = "vllm:iteration_tokens_total_count"
        return previous is None or not previous.ok or current.value(name) != previous.value(name)

    m = run().with_probe("frozen steps", rule)
    assert m.results("frozen steps", "idle") == [True, False, False]
    assert m.results("frozen steps", "wedged_engine") == [True, False, True, False]
    assert m.failure_rate("/metrics answers", "wedged_engine") == 0.25
    assert m.failure_rate("HTTP /health", "wedged_engine") == 0.25
    assert m.failure_rate("TCP connect", "idle") == 0.0
    assert seen[0] is None and "frozen steps" in m.probes and "frozen steps" not in run().probes


def test_a_rule_that_raises_fails_its_row_and_the_table_names_every_cell():
    def broken(previous, current):
        raise NotImplementedError

    m = run().with_probe("broken", broken)
    assert m.failure_rate("broken", "idle") == 1.0
    table = m.table()
    assert "engine stalled" in table and "fails  25%" in table and "passes" in table
    assert m.cores("wedged_engine") == pytest.approx(0.05)
    assert m.cores("wedged_engine", runnable=True) == pytest.approx(1.0)
    assert "runnable (cores)" in table


@pytest.mark.timeout(120)
def test_live_matrix_what_each_probe_sees():
    m = matrix.run_matrix(scenario.variant(0), ["idle", "wedged_engine", "blocked_event_loop"],
                          ticks=2)  # fmt: skip
    assert m.failure_rate("TCP connect", "wedged_engine") == 0.0
    assert m.failure_rate("HTTP /health", "wedged_engine") == 0.0
    assert m.failure_rate("1-token completion", "wedged_engine") == 1.0
    assert m.failure_rate("1-token completion", "idle") == 0.0
    assert m.failure_rate("HTTP /health", "blocked_event_loop") == 1.0
    assert m.failure_rate("TCP connect", "blocked_event_loop") == 0.0
    first, second = m.evidence["wedged_engine"].scrapes
    name = "vllm:iteration_tokens_total_count"
    assert first.value(name) == second.value(name) and second.value("vllm:num_requests_running")
    assert m.cores("blocked_event_loop", runnable=True) < 0.3  # it sleeps
    with pytest.raises(ValueError):
        matrix.run_matrix(scenario.variant(0), ["nope"])
