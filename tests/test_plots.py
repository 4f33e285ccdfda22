from labsupport import plots


def test_before_after_labels_each_bar_with_its_value():
    fig = plots.before_after({"default": 250.0, "fixed": 10.0}, unit="ms", title="p99")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["default", "fixed"]
    assert {t.get_text() for t in ax.texts} == {"250 ms", "10 ms"}


def test_show_outside_a_notebook_returns_the_figure():
    fig, _ = plots.figure()
    assert plots.show(fig) is fig
