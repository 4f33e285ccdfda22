"""The sign-off's workloads measured on this machine, and the H100 recording's same workloads.

    >>> from labsupport.scenarios import bandwidth_blind_spot as scenario
    >>> from labsupport.scenarios.bandwidth_blind_spot import runs
    >>> table = runs.recorded_table()
    >>> [row["workload"] for row in table]
    ['small copies (1 MiB)', 'large copies (4 GiB)', 'GEMM (8192, bf16)']
    >>> table[1]["achieved_gbps"], table[1]["gpm_dram_bw_util"]
    (3017.0, 89.9)

`measure(v)` runs the variant's workloads in a fresh process (`labsupport.telemetry.bandwidth`):
on the GPU when one is present (bf16, NVML and GPM read beside each), else on one CPU core
(float32, the process's CPU utilisation beside each). `evidence` turns them into the plain data
an exercise gets: per workload the bytes read and written, the floating-point operations, the
seconds, the repetitions and the readings, nothing that names what a workload is. The GPU's
theoretical peak comes from its own memory clock and bus width (NVML).
"""

from __future__ import annotations

from labsupport import device as _device
from labsupport.telemetry import bandwidth, trace
from labsupport.telemetry.bandwidth import Measured, Workload

CPU_WINDOW_S = 0.15
GPU_WINDOW_S = 1.5  # NVML's utilisation covers 1/6 s to 1 s: a window needs several of them


def device_for(use_gpu: bool | None = None) -> str:
    if use_gpu is None:
        use_gpu = _device.cuda_available()
    return "cuda" if use_gpu else "cpu"


def measure_workloads(workloads: list[Workload], device: str) -> list[Measured]:
    """The workloads timed in one fresh process on `device`, best of three windows each."""
    min_s = CPU_WINDOW_S if device == "cpu" else GPU_WINDOW_S
    return bandwidth.measure_in_child(
        workloads, device=device, min_s=min_s, windows=3, timeout_s=600.0
    )


def measure(v, device: str | None = None) -> list[Measured]:
    """The variant's workloads (probes, references, llm-serve's step) on this machine."""
    device = device or device_for()
    return measure_workloads(v.workloads(device), device)


def record(m: Measured) -> dict:
    """One measurement as an exercise sees it."""
    return {
        "bytes_read": int(m.bytes_read),
        "bytes_written": int(m.bytes_written),
        "flops": int(m.flops),
        "seconds": float(m.seconds),
        "repeats": int(m.repeats),
        "readings": {k: round(float(x), 2) for k, x in m.readings.items()},
    }


def evidence(measured: list[Measured], device: str) -> dict:
    """What the exercises get: the runs by name, the device, its theoretical peak if known."""
    peak = None
    card = "cpu"
    if device != "cpu":
        from labsupport.telemetry import nvml

        c = nvml.card(0)
        card, peak = c.name, round(c.peak_bandwidth_gbps, 1)
    return {
        "device": device,
        "card": card,
        "theoretical_peak_gbps": peak,
        "runs": {m.name: record(m) for m in measured},
    }


def recorded_table() -> list[dict]:
    """The H100 recording's three workloads: what they achieved, what NVML and GPM read."""
    t = trace.recorded()
    achieved = t.notes["achieved_gbps"]
    rows = []
    for phase, label in (
        ("smallcopy", "small copies (1 MiB)"),
        ("bigcopy", "large copies (4 GiB)"),
        ("gemm", "GEMM (8192, bf16)"),
    ):
        part = t.phase(phase).active()
        rows.append(
            {
                "workload": label,
                "achieved_gbps": achieved.get(phase),
                "nvml_util_gpu": round(part.median("util_gpu"), 1),
                "nvml_util_mem": round(part.median("util_mem"), 1),
                "gpm_dram_bw_util": round(part.median("dram_bw_util"), 1),
            }
        )
    return rows


def recorded_card() -> trace.Card:
    return trace.recorded().card
