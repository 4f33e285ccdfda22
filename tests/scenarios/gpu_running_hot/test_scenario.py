"""Variants: what a seed changes; the page; the live path without and with a GPU."""

import re

import pytest

from labsupport import labs
from labsupport.scenarios import gpu_running_hot as scenario
from labsupport.scenarios.gpu_running_hot import live, plots
from labsupport.telemetry import promtool


def test_variants_cycle_the_cause_and_move_the_gpu():
    vs = [scenario.variant(s) for s in range(6)]
    assert [v.spec.event.kind for v in vs[:3]] == list(scenario.KINDS)
    assert len({(v.spec.event.gpu, v.spec.event.kind, v.spec.event.start_s) for v in vs}) == 6
    assert scenario.variant(4) == scenario.variant(4)
    for v in vs:
        roles = v.spec.roles
        assert roles[v.spec.event.gpu] == "busy" and roles.count("idle") == 2 and "warm" in roles
        assert roles[v.spec.blips[0][0]] == "bursty"
    assert vs[0].spec.blips[0][0] < vs[0].spec.event.gpu  # the default: the blip comes first
    with pytest.raises(ValueError):
        scenario.variant(-1)


def test_the_page_names_the_symptom_not_the_cause():
    text = scenario.page(scenario.variant(0))
    assert "GPUThrottling" in text and "DCGM_FI_DEV_GPU_TEMP > 82" in text
    words = labs.get(280).cause_words
    pattern = re.compile("|".join(re.escape(w) for w in words), re.I)
    assert not pattern.search(text)


def test_without_a_gpu_the_card_is_the_recorded_h100():
    t = live.observe(use_gpu=False)
    assert t.phase_names() == ["idle", "gemm", "idle_after"]
    assert t.source.startswith("recorded on an NVIDIA H100")
    assert plots.trace_panels(t, title="x").axes


@pytest.mark.skipif(not promtool.available(), reason="promtool is not installed")
def test_the_teams_rules_fire_at_rest_and_at_work_on_the_recording():
    fired = live.rules_on_trace(live.alerts.NAIVE_RULES, live.observe(use_gpu=False))
    assert fired["gemm"] == 1.0 and fired["idle"] > 0.5


def test_node_and_pages_figures_draw():
    n = scenario.variant(1).node()
    assert len(plots.node_panels(n, title="x").axes) == 24
    s = live.alerts.score("", {"c": n}, timeline={"c": {t: {"0"} for t in n.t_s}})
    assert plots.pages(n, {"all": s}, title="x").axes


@pytest.mark.gpu
@pytest.mark.timeout(180)
def test_on_a_gpu_the_card_is_sampled_live_under_a_real_gemm():
    t = live.observe(use_gpu=True, idle_s=2.0, gemm_s=8.0)
    assert t.source.startswith("sampled live")
    busy = t.phase("gemm").active()
    assert len(busy) > 20 and busy.median("util_gpu") > 90
    assert t.notes["gemm"]["tflops"] > 1
