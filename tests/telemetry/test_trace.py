"""The H100 recording loads with its card, and a Trace selects phases and steady parts."""

import math

import numpy as np
import pytest

from labsupport.telemetry import trace


@pytest.fixture(scope="module")
def recorded():
    return trace.recorded()


def test_recording_has_every_column_and_its_phases(recorded):
    assert set(trace.COLUMNS) <= set(recorded.columns)
    assert recorded.phase_names() == ["idle", "gemm", "idle_after", "smallcopy", "bigcopy"]
    assert recorded["t_s"][0] == 0 and np.all(np.diff(recorded["t_s"]) > 0)
    assert np.isnan(recorded["thermal_violation_ns"]).all()  # not recorded: NaN, not zero


def test_card_limits_are_the_ones_read_on_the_card(recorded):
    card = recorded.card
    assert (card.gpu_max_op_c, card.slowdown_c, card.shutdown_c) == (87, 89, 95)
    assert card.power_limit_w == 700.0
    # 2 x 2619 MHz x 5120 bits / 8: the H100 SXM5's 3.35 TB/s
    assert card.peak_bandwidth_gbps == pytest.approx(3352.3, abs=0.1)
    assert math.isnan(trace.Card(name="x").peak_bandwidth_gbps)


def test_active_drops_the_idle_lead_in_and_the_ramp(recorded):
    gemm = recorded.phase("gemm")
    busy = gemm.active()
    assert 0 < len(busy) < len(gemm)
    assert busy.seen("reasons") == [4]  # the GEMM loop at its power limit, every sample
    assert busy.median("power_w") == pytest.approx(698, abs=2)
    copy = recorded.phase("bigcopy").active()
    assert copy.median("util_mem") == 100 and copy.median("dram_bw_util") == pytest.approx(
        90, abs=1
    )
    # GPM's DRAM bandwidth reading is the achieved share of the theoretical peak
    achieved = recorded.notes["achieved_gbps"]["bigcopy"] / recorded.card.peak_bandwidth_gbps
    assert 100 * achieved == pytest.approx(copy.median("dram_bw_util"), abs=1)


def test_unknown_phase_names_the_known_ones(recorded):
    with pytest.raises(KeyError, match="gemm"):
        recorded.phase("nope")
