"""The clock event reasons bitmask, as NVIDIA documents it: one row per bit.

    >>> from labsupport.telemetry import reasons
    >>> row = reasons.BY_BIT[0x4]
    >>> row.name, row.nvml, row.dcgm
    ('SW_POWER_CAP', 'nvmlClocksEventReasonSwPowerCap', 'DCGM_CLOCKS_EVENT_REASON_SW_POWER_CAP')
    >>> reasons.mask_hex(0x44)
    '0x0000000000000044'

NVML reports why the clocks are below their maximum as a bitmask
(`nvmlDeviceGetCurrentClocksEventReasons`, formerly `...ThrottleReasons`); DCGM exports the same
mask as the field `DCGM_FI_DEV_CLOCKS_EVENT_REASONS` (112, formerly
`DCGM_FI_DEV_CLOCK_THROTTLE_REASONS`), and dcgm-exporter can count it per bit as
`DCGM_EXP_CLOCK_EVENTS_COUNT{clock_event="..."}`. This table is the documentation: names and
NVIDIA's own descriptions (nvml.h, dcgm_fields.h). Reading a mask, and judging which bits need
a human, is the learner's job, so there is no decoder here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClockEventReason:
    """One bit of the mask under the names each tool gives it."""

    bit: int
    name: str  # DCGM's suffix, used throughout the labs: DCGM_CLOCKS_EVENT_REASON_<name>
    nvml: str  # pynvml constant
    smi: str  # `nvidia-smi -q -d PERFORMANCE` line
    exporter: str  # dcgm-exporter's clock_event label
    doc: str  # NVIDIA's description (nvml.h / dcgm_fields.h), shortened

    @property
    def dcgm(self) -> str:
        return f"DCGM_CLOCKS_EVENT_REASON_{self.name}"


TABLE: tuple[ClockEventReason, ...] = (
    ClockEventReason(
        0x1,
        "GPU_IDLE",
        "nvmlClocksEventReasonGpuIdle",
        "Idle",
        "gpu_idle",
        "Nothing is running on the GPU and the clocks are dropping to Idle state.",
    ),
    ClockEventReason(
        0x2,
        "CLOCKS_SETTING",
        "nvmlClocksEventReasonApplicationsClocksSetting",
        "Applications Clocks Setting",
        "clocks_setting",
        "GPU clocks are limited by the current setting of applications clocks.",
    ),
    ClockEventReason(
        0x4,
        "SW_POWER_CAP",
        "nvmlClocksEventReasonSwPowerCap",
        "SW Power Cap",
        "power_cap",
        "The clocks have been optimized to ensure not to exceed currently set power limits.",
    ),
    ClockEventReason(
        0x8,
        "HW_SLOWDOWN",
        "nvmlClocksEventReasonHwSlowdown",
        "HW Slowdown",
        "hw_slowdown",
        "HW Slowdown (reducing the core clocks by a factor of 2 or more) is engaged: "
        "temperature too high, External Power Brake Assertion, or power draw too high and "
        "Fast Trigger protection reducing the clocks; may also be reported during a PState "
        "or clock change.",
    ),
    ClockEventReason(
        0x10,
        "SYNC_BOOST",
        "nvmlClocksEventReasonSyncBoost",
        "Sync Boost",
        "sync_boost",
        "This GPU is in a Sync Boost group and runs at the group's lowest possible clocks.",
    ),
    ClockEventReason(
        0x20,
        "SW_THERMAL",
        "nvmlClocksEventReasonSwThermalSlowdown",
        "SW Thermal Slowdown",
        "sw_thermal",
        "SW Thermal Slowdown: the clocks are reduced to keep the GPU temperature below the "
        "GPU Max Operating Temperature and the memory temperature below the Memory Max "
        "Operating Temperature.",
    ),
    ClockEventReason(
        0x40,
        "HW_THERMAL",
        "nvmlClocksEventReasonHwThermalSlowdown",
        "HW Thermal Slowdown",
        "hw_thermal",
        "HW Thermal Slowdown (reducing the core clocks by a factor of 2 or more) is engaged: "
        "temperature being too high.",
    ),
    ClockEventReason(
        0x80,
        "HW_POWER_BRAKE",
        "nvmlClocksEventReasonHwPowerBrakeSlowdown",
        "HW Power Brake Slowdown",
        "hw_power_brake",
        "HW Power Brake Slowdown (reducing the core clocks by a factor of 2 or more) is "
        "engaged: External Power Brake Assertion being triggered (e.g. by the system power "
        "supply).",
    ),
    ClockEventReason(
        0x100,
        "DISPLAY_CLOCKS",
        "nvmlClocksEventReasonDisplayClockSetting",
        "Display Clock Setting",
        "display_clocks",
        "GPU clocks are limited by the current setting of Display clocks.",
    ),
)

BY_BIT = {row.bit: row for row in TABLE}
BY_NAME = {row.name: row for row in TABLE}
KNOWN_MASK = sum(BY_BIT)  # 0x1ff: bits above are not documented as clock event reasons
DOCS = {
    "nvml": "https://docs.nvidia.com/deploy/nvml-api/group__nvmlClocksEventReasons.html",
    "dcgm": "https://github.com/NVIDIA/DCGM/blob/master/dcgmlib/dcgm_fields.h",
}


def mask_hex(mask: int) -> str:
    """The mask as `nvidia-smi -q` prints it: 0x followed by 16 hex digits."""
    return f"0x{int(mask):016x}"
