"""NVML samples over time, recorded on a real GPU or sampled live, and the card they came from.

    >>> from labsupport.telemetry import trace
    >>> t = trace.recorded()
    >>> t.card.name, t.card.gpu_max_op_c, t.card.slowdown_c
    ('NVIDIA H100 80GB HBM3', 87, 89)
    >>> busy = t.phase("gemm").active()
    >>> round(float(busy.median("power_w"))), int(busy.median("sm_mhz"))
    (698, 1350)
    >>> round(t.card.peak_bandwidth_gbps)
    3352

A `Trace` holds one column per NVML reading (numpy arrays, one row per sample) and the phase
label of each sample. `recorded()` loads `labsupport/data/nvml_trace_h100.csv`, sampled at
~10 Hz on an H100 while it idled, ran a GEMM loop, small copies and large copies (see
`nvml_trace_h100.md` beside it); `labsupport.telemetry.nvml` samples a live card into the same
shape. The card's own limits (temperature thresholds, power limit, maximum clocks, memory bus)
travel with the trace as a `Card`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labsupport import wire

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
RECORDED = "nvml_trace_h100"
# Columns every trace has (NaN where a card or a recording did not report one).
COLUMNS = (
    "t_s",  # seconds since the first sample
    "temp_c",  # GPU temperature
    "sm_mhz",  # SM clock
    "mem_mhz",  # memory clock
    "power_w",  # power draw
    "reasons",  # clock event reasons bitmask
    "util_gpu",  # NVML utilization.gpu, %
    "util_mem",  # NVML utilization.memory, %
    "dram_bw_util",  # GPM DRAM bandwidth utilisation, % (Hopper and later)
    "mem_used_mib",
    "thermal_violation_ns",  # NVML violation counters (cumulative)
    "power_violation_ns",
)


@wire.record
@dataclass(frozen=True)
class Card:
    """A card's identity and its own limits, as NVML reports them."""

    name: str
    driver: str = ""
    slowdown_c: int | None = None  # NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
    shutdown_c: int | None = None  # NVML_TEMPERATURE_THRESHOLD_SHUTDOWN
    gpu_max_op_c: int | None = None  # NVML_TEMPERATURE_THRESHOLD_GPU_MAX
    mem_max_op_c: int | None = None  # NVML_TEMPERATURE_THRESHOLD_MEM_MAX
    power_limit_w: float | None = None  # enforced power limit
    max_sm_mhz: int | None = None
    max_mem_mhz: int | None = None
    mem_bus_width_bits: int | None = None

    @property
    def peak_bandwidth_gbps(self) -> float:
        """Theoretical DRAM bandwidth, GB/s: 2 transfers per memory clock x bus width (HBM, GDDR
        report their clock so that this holds); NaN when the card did not say."""
        if not self.max_mem_mhz or not self.mem_bus_width_bits:
            return math.nan
        return 2 * self.max_mem_mhz * 1e6 * self.mem_bus_width_bits / 8 / 1e9


@dataclass
class Trace:
    """Samples of one card: `columns[name]` is a float array, `phases` a label per sample."""

    columns: dict[str, np.ndarray]
    phases: np.ndarray
    card: Card
    source: str  # where the samples come from, said plainly
    notes: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.phases)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def select(self, keep: np.ndarray) -> Trace:
        """The samples where `keep` (a boolean array) is true."""
        keep = np.asarray(keep, dtype=bool)
        return Trace(
            {k: v[keep] for k, v in self.columns.items()},
            self.phases[keep],
            self.card,
            self.source,
            self.notes,
        )

    def phase(self, name: str) -> Trace:
        """The samples labelled `name` (idle lead-ins included: see `active`)."""
        if name not in set(self.phases.tolist()):
            raise KeyError(f"no phase {name!r}: the trace has {self.phase_names()}")
        return self.select(self.phases == name)

    def phase_names(self) -> list[str]:
        return list(dict.fromkeys(self.phases.tolist()))

    def active(self, min_util_gpu: float = 10.0, settle_s: float = 1.0) -> Trace:
        """The samples where a kernel ran (utilization.gpu at least `min_util_gpu`), minus
        the first `settle_s` seconds of each stretch, while clocks and power ramp."""
        busy = self["util_gpu"] >= min_util_gpu
        keep = np.zeros(len(self), dtype=bool)
        start = None
        for i, on in enumerate(busy):
            if on and start is None:
                start = self["t_s"][i]
            elif not on:
                start = None
            keep[i] = on and self["t_s"][i] - start >= settle_s
        return self.select(keep)

    def median(self, name: str) -> float:
        values = self[name][~np.isnan(self[name])]
        return float(np.median(values)) if len(values) else math.nan

    def seen(self, name: str) -> list[int]:
        """The distinct values of a column, in order of first appearance (e.g. masks)."""
        values = self[name][~np.isnan(self[name])].astype(np.int64)
        return list(dict.fromkeys(values.tolist()))


def _meta(name: str) -> dict:
    return json.loads((DATA_DIR / f"{name}.json").read_text())


def recorded(name: str = RECORDED) -> Trace:
    """A trace recorded on a real GPU and shipped with the package (`labsupport/data`)."""
    meta = _meta(name)
    with open(DATA_DIR / f"{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    t0 = float(rows[0]["t"])
    columns = {c: np.full(len(rows), np.nan) for c in COLUMNS}
    for i, row in enumerate(rows):
        columns["t_s"][i] = float(row["t"]) - t0
        columns["power_w"][i] = float(row["power_mw"]) / 1000.0
        for key in ("temp_c", "sm_mhz", "mem_mhz", "reasons", "util_gpu", "util_mem"):
            columns[key][i] = float(row[key])
        columns["dram_bw_util"][i] = float(row["dram_bw_util"])
        columns["mem_used_mib"][i] = float(row["mem_used_mib"])
    card = Card(**meta["card"])
    source = (
        f"recorded on an {card.name} (driver {card.driver}) on {meta['recorded']}: " + meta["what"]
    )
    phases = np.array([row["phase"] for row in rows])
    return Trace(columns, phases, card, source, notes=meta)
