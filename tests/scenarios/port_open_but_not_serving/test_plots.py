"""The lab's figures build from hand-made results, without pyplot."""

from labsupport.scenarios.port_open_but_not_serving import plots
from labsupport.scenarios.port_open_but_not_serving.runs import PodRun
from labsupport.scenarios.port_open_but_not_serving.timeline import Verdict, View
from labsupport.scenarios.port_open_but_not_serving.verify import Comparison
from tests.scenarios.port_open_but_not_serving.test_matrix import run


def test_heatmap():
    fig = plots.heatmap(run().with_probe("x", lambda p, c: True))
    assert len(fig.axes) == 1 and len(fig.axes[0].get_yticklabels()) == 5


def test_pod_timeline_with_a_shadow_and_shed_requests():
    pod = PodRun("pod: x", ("wedged_engine",))
    pod.phases = {"fault": (2.0, 8.0)}
    pod.views = {
        "pod: x": View([(0.0, False), (1.0, True)], [5.0]),
        "classic: y": View([(0.0, True)]),
    }
    pod.requests = [(1.5, 0.05, "ok", "light"), (2.5, 5.0, "timeout", "light"),
                    (2.6, 0.0, "http_429", "storm")]  # fmt: skip
    fig = plots.pod_timeline(pod, title="t")
    assert len(fig.axes) == 2


def test_comparison():
    card = {"healthy": Verdict("healthy", True, None, "-"),
            "wedged_engine": Verdict("wedged_engine", True, 3.2, "-")}  # fmt: skip
    before = {
        "healthy": card["healthy"],
        "wedged_engine": Verdict("wedged_engine", False, None, "-"),
    }
    fig = plots.comparison(Comparison({"incident": before, "yours": card}, fault_window_s=8.0))
    assert len(fig.axes) == 2
