"""A node's series: recorded samples for healthy GPUs, NVIDIA's documented bits for events."""

import pytest

from labsupport.scenarios.gpu_running_hot import node

REASONS = "DCGM_FI_DEV_CLOCKS_EVENT_REASONS"
ROLES = ("idle", "busy", "warm", "bursty")


def _build(kind=None, **kw):
    event = None
    if kind == "thermal":
        event = node.Event(1, kind, start_s=300)
    elif kind:
        event = node.Event(1, kind, start_s=900, end_s=1500)
    return node.build(node.NodeSpec(roles=ROLES, seed=5, event=event, **kw))


def test_same_spec_same_series_and_every_metric_per_scrape():
    a, b = _build("brake"), _build("brake")
    assert a.gpus == b.gpus
    assert len(a.t_s) == node.WINDOW_S // node.INTERVAL_S + 1
    for series in a.gpus.values():
        assert all(len(v) == len(a.t_s) for v in series.values())


def test_healthy_roles_read_like_the_recording():
    n = _build()
    idle, busy, warm = (n.gpus[g] for g in "012")
    assert set(idle[REASONS]) == {1.0} and set(idle["DCGM_FI_DEV_SM_CLOCK"]) == {345.0}
    assert set(busy[REASONS]) == {4.0}
    assert 1300 <= sorted(busy["DCGM_FI_DEV_SM_CLOCK"])[90] <= 1420
    assert 690 <= sorted(busy["DCGM_FI_DEV_POWER_USAGE"])[90] <= 705
    # the warm slot runs hotter than its peers but below its own max operating temperature
    assert 82 <= max(warm["DCGM_FI_DEV_GPU_TEMP"]) < n.card.gpu_max_op_c
    assert n.episodes == []


@pytest.mark.parametrize("kind, mask", [("brake", 0x88), ("fast_trigger", 0x8)])
def test_power_events_halve_the_clocks_at_a_normal_temperature(kind, mask):
    n = _build(kind)
    g = n.gpus["1"]
    during = [i for i, t in enumerate(n.t_s) if 900 <= t < 1500]
    assert {g[REASONS][i] for i in during} == {float(mask)}
    assert max(g["DCGM_FI_DEV_SM_CLOCK"][i] for i in during) < 1350 / 2 + 60
    assert max(g["DCGM_FI_DEV_GPU_TEMP"]) < n.card.gpu_max_op_c
    assert g[REASONS][-1] == 4.0  # it passed
    assert n.episodes == [("1", 900, 1485)]
    # no thermal violation accrues; the power one only while at the power limit
    assert len(set(g["DCGM_FI_DEV_THERMAL_VIOLATION"])) == 1
    power = g["DCGM_FI_DEV_POWER_VIOLATION"]
    assert power[during[-1]] == power[during[0] - 1]


def test_a_failing_cooler_goes_through_sw_then_hw_thermal_at_the_cards_thresholds():
    n = _build("thermal")
    g = n.gpus["1"]
    masks = [int(m) for m in g[REASONS]]
    first_sw, first_hw = masks.index(0x20), masks.index(0x68)
    assert first_sw < first_hw
    assert g["DCGM_FI_DEV_GPU_TEMP"][first_sw] >= n.card.gpu_max_op_c - 1
    assert g["DCGM_FI_DEV_GPU_TEMP"][first_hw] >= n.card.slowdown_c - 1
    assert max(g["DCGM_FI_DEV_SM_CLOCK"][first_hw:]) <= 1980 / 3 + 10  # cut by 2x or more
    counter = g["DCGM_FI_DEV_THERMAL_VIOLATION"]
    assert counter[-1] - counter[first_sw - 1] == 15e9 * (len(masks) - first_sw)
    assert n.episodes[0][0] == "1" and n.episodes[0][1] == n.t_s[first_sw]


def test_a_blip_is_one_scrape_at_a_clock_change():
    n = _build(blips=((3, 600.0),))
    masks = [int(m) for m in n.gpus["3"][REASONS]]
    blipped = [i for i, m in enumerate(masks) if m & 0x8]
    assert len(blipped) == 1
    i = blipped[0]
    assert masks[i - 1] & ~0x8 != masks[i] & ~0x8 or n.t_s[i] >= 600  # at a start or a stop


def test_evidence_is_plain_data_without_the_answer():
    ev = _build("brake").evidence()
    assert set(ev) == {"hostname", "interval_s", "t_s", "gpus"}
    g = ev["gpus"]["1"]
    assert "DCGM_FI_DEV_SLOWDOWN_TEMP" in g["limits"]
    assert "DCGM_FI_DEV_SLOWDOWN_TEMP" not in g["series"]
    assert "episodes" not in str(ev)


def test_an_event_outside_the_window_is_refused():
    spec = node.NodeSpec(roles=("busy",), event=node.Event(0, "brake", start_s=99_999))
    with pytest.raises(ValueError, match="changed no scrape"):
        node.build(spec)
