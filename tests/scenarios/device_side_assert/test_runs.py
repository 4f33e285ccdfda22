from labsupport.scenarios.device_side_assert import plots as figures
from labsupport.scenarios.device_side_assert.runs import Outcome, Probe, Run

LOG = (
    "INFO x\nERROR srelab.engine: engine step failed; failing 2 request(s) "
    "[cmpl-req-0006-0, cmpl-req-0008-0]\nTraceback...\n"
    "ERROR srelab.engine: engine step failed; failing 1 request(s) [cmpl-req-0009-0]\n"
)


def _run() -> Run:
    outcomes = [
        Outcome("req-0006", "chat", True, 0.1, 0.5, 200, 3, True, error="Request errored"),
        Outcome("req-0007", "rag", False, 0.2, 0.3, 200, 4, True),
        Outcome("req-0008", "agent", True, 0.3, 0.5, 200, 0, True, error="Request errored"),
        Outcome("req-0009", "rag", False, 0.6, 0.7, 500, 0, False, error="Request errored"),
    ]
    probes = [Probe(0.1 * i, "/health", 200, 0.001) for i in range(8)]
    return Run(outcomes, probes, LOG, bad_ids=["req-0008"])


def test_failed_steps_map_engine_ids_back_to_the_gateways():
    assert _run().failed_steps() == [["req-0006", "req-0008"], ["req-0009"]]


def test_counts_leave_the_bad_requests_out():
    run = _run()
    assert (run.good, run.served_good) == (3, 1)
    assert run.first_failure_s() == 0.5
    assert len(run.probe_series("/health")) == 8 and not run.probe_series("/livez")


def test_the_timeline_draws_calls_and_probes():
    fig = figures.timeline(_run(), title="t")
    assert fig.axes[0].get_title() == "t"
