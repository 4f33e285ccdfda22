from labsupport.scenarios.dataloader_bus_error import plots
from labsupport.scenarios.dataloader_bus_error.loader import LoaderConfig, Pace
from labsupport.scenarios.dataloader_bus_error.runs import LoaderRun


def test_usage_draws_each_run_and_marks_the_one_that_died():
    cfg = LoaderConfig((3, 8, 8), "uint8", 2, 1, 1)
    ok = LoaderRun("ok", cfg, 2**20, 4, 4, 0.0, 0.1, None, None, 0, (), ((0.0, 0), (0.1, 9e5)),
                   900000, "root", Pace())  # fmt: skip
    died = LoaderRun("died", cfg, 2**20, 4, 1, 0.0, 0.1, "RuntimeError", "x", 0, (),
                     ((0.0, 0), (0.05, 2**20)), 2**20, "root", Pace())  # fmt: skip
    fig = plots.usage([ok, died], title="t")
    ax = fig.axes[0]
    assert len(ax.get_legend().get_texts()) == 2
    assert any(line.get_marker() == "x" for line in ax.get_lines())
