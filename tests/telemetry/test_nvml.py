"""NVML sampling: unavailable here is said plainly; on a GPU a real trace comes back."""

import time

import pytest

from labsupport import device
from labsupport.telemetry import nvml, reasons


def test_available_is_false_without_a_driver():
    if device.nvidia_driver_present():
        pytest.skip("this machine has an NVIDIA driver")
    assert nvml.available() is False
    with pytest.raises(nvml.NvmlUnavailable):
        nvml.Sampler().start()


@pytest.mark.gpu
@pytest.mark.timeout(120)
def test_sampler_reads_a_live_card():
    card = nvml.card(0)
    assert card.name and card.slowdown_c and card.power_limit_w
    sampler = nvml.Sampler(interval_s=0.05)
    with sampler:
        sampler.mark("idle")
        time.sleep(1.0)
    t = sampler.trace()
    assert len(t) >= 10 and t.phase_names()[-1] == "idle"
    assert (t["temp_c"] > 0).all() and (t["sm_mhz"] > 0).all()
    assert all(int(m) & ~reasons.KNOWN_MASK == 0 for m in t["reasons"])
    assert t["thermal_violation_ns"][-1] >= t["thermal_violation_ns"][0]
    assert sampler.error is None
