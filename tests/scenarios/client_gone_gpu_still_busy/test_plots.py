from labsupport.serving import disconnect_plots
from labsupport.serving.disconnects import DisconnectRun, Workload


def _run(label, running):
    samples = [(0.1 * i, r, 0, 4 if i < 3 else 0, 3 * r) for i, r in enumerate(running)]
    return DisconnectRun(label, "cpu", Workload(), "", "", "", [], [], 0.25, 0.5, samples)


def test_timeline_has_a_panel_per_round_and_a_kv_axis_each():
    fig = disconnect_plots.timeline(
        {"no cancel": _run("no cancel", [4, 8, 8, 8, 8, 0]), "fixed": _run("fixed", [4, 4, 0])}
    )
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title().startswith("no cancel")
    assert fig.axes[0].get_xlim()[1] == fig.axes[1].get_xlim()[1]  # same time scale


def test_timeline_of_one_round():
    fig = disconnect_plots.timeline({"only": _run("only", [1, 0])}, title="t")
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "t"
