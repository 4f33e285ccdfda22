from labsupport.scenarios.client_gone_gpu_still_busy import plots
from labsupport.scenarios.client_gone_gpu_still_busy.rounds import Round, Workload


def _run(label, running, gateway=True):
    samples = [
        (0.1 * i, r, 0, 4 if i < 3 else 0, 3 * r, (4 if i < 2 else 0) if gateway else None)
        for i, r in enumerate(running)
    ]
    return Round(label, "cpu", Workload(), "close" if gateway else "", "", "", "", [], [], [],
                 0.25, 0.5, samples)  # fmt: skip


def test_timeline_has_a_panel_per_round_and_a_kv_axis_each():
    fig = plots.timeline(
        {"incident": _run("incident", [4, 8, 8, 8, 8, 0]), "fixed": _run("fixed", [4, 4, 0])}
    )
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title() == "incident"
    assert fig.axes[0].get_xlim()[1] == fig.axes[1].get_xlim()[1]  # same time scale
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "clients connected to the gateway" in labels and "KV blocks held (right)" in labels


def test_timeline_of_one_round_without_a_gateway():
    fig = plots.timeline({"only": _run("only", [1, 0], gateway=False)}, title="t")
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "t"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "clients connected to the gateway" not in labels
