"""What dcgm-exporter would export for a card: DCGM field names, units and labels.

    >>> from labsupport.telemetry import dcgm, trace
    >>> t = trace.recorded().phase("bigcopy").active()
    >>> s = dcgm.scrape(t, at_s=[t["t_s"][10]])
    >>> s["DCGM_FI_DEV_MEM_COPY_UTIL"], round(s["DCGM_FI_PROF_DRAM_ACTIVE"][0], 2)
    ([100.0], 0.9)
    >>> dcgm.labels(gpu=3, card=t.card, hostname="gpu-node-07")["modelName"]
    'NVIDIA H100 80GB HBM3'

dcgm-exporter renders each field as a Prometheus metric named like the field, with the labels
`gpu`, `UUID`, `pci_bus_id`, `device`, `modelName` and `hostname` (spelled `Hostname` before
dcgm-exporter's May 2026 release, #655). Units are DCGM's: temperatures in C, clocks in MHz,
power in W, NVML utilisations in %, profiling (DCP) fields as ratios 0-1, violation counters in
ns. `DCGM_FI_PROF_DRAM_ACTIVE` is the DCGM field that DCGM itself reads from NVML GPM's
`NVML_GPM_METRIC_DRAM_BW_UTIL` on Hopper and later ("percentage of DRAM bw used vs theoretical
maximum", dcgm_fields.cpp `DcgmFieldIdToNvmlGpmMetricId`), so a trace's GPM column maps onto it.
`scrape` samples a trace the way a scrape sees it: the latest reading at each scrape time.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from labsupport.telemetry.trace import Card, Trace

# DCGM field (the exporter's metric name) -> (trace column, factor from the trace's unit)
FROM_TRACE = {
    "DCGM_FI_DEV_GPU_TEMP": ("temp_c", 1.0),
    "DCGM_FI_DEV_SM_CLOCK": ("sm_mhz", 1.0),
    "DCGM_FI_DEV_MEM_CLOCK": ("mem_mhz", 1.0),
    "DCGM_FI_DEV_POWER_USAGE": ("power_w", 1.0),
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": ("reasons", 1.0),
    "DCGM_FI_DEV_GPU_UTIL": ("util_gpu", 1.0),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("util_mem", 1.0),
    "DCGM_FI_PROF_DRAM_ACTIVE": ("dram_bw_util", 0.01),
    "DCGM_FI_DEV_FB_USED": ("mem_used_mib", 1.0),
    "DCGM_FI_DEV_THERMAL_VIOLATION": ("thermal_violation_ns", 1.0),
    "DCGM_FI_DEV_POWER_VIOLATION": ("power_violation_ns", 1.0),
}
# DCGM fields that are the card's own limits (constant per card) -> Card attribute
FROM_CARD = {
    "DCGM_FI_DEV_SLOWDOWN_TEMP": "slowdown_c",
    "DCGM_FI_DEV_SHUTDOWN_TEMP": "shutdown_c",
    "DCGM_FI_DEV_GPU_MAX_OP_TEMP": "gpu_max_op_c",
    "DCGM_FI_DEV_MEM_MAX_OP_TEMP": "mem_max_op_c",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": "power_limit_w",
}
COUNTERS = ("DCGM_FI_DEV_THERMAL_VIOLATION", "DCGM_FI_DEV_POWER_VIOLATION")


def labels(*, gpu: int | str, card: Card, hostname: str) -> dict[str, str]:
    """The labels dcgm-exporter puts on every metric of one GPU (a made-up UUID and bus id)."""
    gpu = str(gpu)
    return {
        "gpu": gpu,
        "UUID": f"GPU-{zlib.crc32(hostname.encode()):08x}-5a1b-4c2d-8e3f-{int(gpu):012x}",
        "pci_bus_id": f"00000000:{0x18 + 0x10 * int(gpu):02X}:00.0",
        "device": f"nvidia{gpu}",
        "modelName": card.name,
        "hostname": hostname,
    }


def scrape(trace: Trace, at_s) -> dict[str, list[float]]:
    """Each DCGM metric at the times `at_s` (seconds on the trace's clock): the latest sample at
    or before each time (NaN before the first one). Fields the trace lacks are left out."""
    at = np.asarray(list(at_s), dtype=float)
    idx = np.searchsorted(trace["t_s"], at, side="right") - 1
    out: dict[str, list[float]] = {}
    for name, (column, factor) in FROM_TRACE.items():
        values = trace[column]
        if np.all(np.isnan(values)):
            continue
        picked = [math.nan if i < 0 else float(values[i]) * factor for i in idx]
        out[name] = picked
    for name, attr in FROM_CARD.items():
        value = getattr(trace.card, attr)
        if value is not None:
            out[name] = [float(value)] * len(at)
    return out


def card_fields(card: Card) -> dict[str, float]:
    """The card's constant fields (thresholds, power limit) by DCGM name, those it reports."""
    return {
        name: float(getattr(card, attr))
        for name, attr in FROM_CARD.items()
        if getattr(card, attr) is not None
    }
