"""The pool's night: recorded readings per role, the saturation episode, rules in promtool."""

import pytest

from labsupport.scenarios.bandwidth_blind_spot import plots, pool
from labsupport.telemetry import promtool


def test_same_seed_same_night_and_every_role_reads_its_recording():
    a, b = pool.build(3), pool.build(3)
    assert a.gpus == b.gpus and a.episodes == b.episodes
    assert len(a.episodes) == 1
    gpu, start, end = a.episodes[0]
    assert a.roles[int(gpu)] == "saturating" and end == a.t_s[-1]
    med = pool.medians(a)
    for g, role in enumerate(a.roles):
        m = med[str(g)]
        if role == "gemm":
            assert (
                m["DCGM_FI_DEV_MEM_COPY_UTIL"] == 33 and 0.24 < m["DCGM_FI_PROF_DRAM_ACTIVE"] < 0.27
            )
        if role == "small_copies":
            assert m["DCGM_FI_PROF_DRAM_ACTIVE"] < 0.01 and m["DCGM_FI_DEV_GPU_UTIL"] < 35
    sat = a.gpus[gpu]["DCGM_FI_PROF_DRAM_ACTIVE"]
    assert min(sat[a.t_s.index(start) :]) > 0.85


def test_bursts_are_ninety_seconds_of_saturation():
    p = pool.build(0, roles=("bursts", "saturating"))
    on = [x > 0.5 for x in p.gpus["0"]["DCGM_FI_PROF_DRAM_ACTIVE"]]
    runs, n = [], 0
    for x in on + [False]:
        if x:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    assert runs and all(r * pool.INTERVAL_S <= pool.BURST_S for r in runs)


@pytest.mark.skipif(not promtool.available(), reason="promtool is not installed")
def test_the_gauge_pages_the_saturated_gpu_only():
    p = pool.build(1)
    gauge = pool.TEAM_RULES.replace(
        "DCGM_FI_DEV_MEM_COPY_UTIL > 90", "DCGM_FI_PROF_DRAM_ACTIVE > 0.72"
    )
    s = pool.score(gauge, {"n": p})
    assert [pg.gpu for pg in s.pages] == [p.episodes[0][0]] and not s.missed and not s.late
    team = pool.score(pool.TEAM_RULES, {"n": p})  # on these recordings the duty cycle pages too
    assert team.pages_real == 1 and not team.false_pages


def test_figures_draw():
    p = pool.build(0)
    assert len(plots.pool_panels(p).axes) == 2
    assert plots.shares({"a": (90.0, 10.0)}, reading="x", title="t").axes
