"""The clock event reasons table matches NVIDIA's own constants, bit for bit."""

import pynvml

from labsupport.telemetry import reasons


def test_every_row_is_pynvmls_constant():
    for row in reasons.TABLE:
        assert getattr(pynvml, row.nvml) == row.bit, row.name


def test_bits_are_distinct_powers_of_two_and_cover_nvmls_all_mask():
    bits = [row.bit for row in reasons.TABLE]
    assert len(set(bits)) == len(bits)
    assert all(b & (b - 1) == 0 for b in bits)
    assert reasons.KNOWN_MASK == pynvml.nvmlClocksEventReasonAll


def test_names_follow_dcgm_and_dcgm_exporter():
    assert reasons.BY_BIT[0x80].dcgm == "DCGM_CLOCKS_EVENT_REASON_HW_POWER_BRAKE"
    assert reasons.BY_NAME["SW_THERMAL"].exporter == "sw_thermal"
    assert reasons.BY_BIT[0x4].exporter == "power_cap"  # dcgm-exporter's label, not the bit name


def test_mask_hex_is_nvidia_smis_format():
    assert reasons.mask_hex(0) == "0x0000000000000000"
    assert reasons.mask_hex(0x1FF) == "0x00000000000001ff"
