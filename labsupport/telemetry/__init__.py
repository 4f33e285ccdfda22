"""GPU telemetry: NVML sampling, recorded traces, DCGM-exporter names, and promtool runs.

    >>> from labsupport.telemetry import reasons, trace
    >>> trace.recorded().card.name
    'NVIDIA H100 80GB HBM3'
    >>> len(reasons.TABLE)
    9

Modules, one concern each:
- `trace`: a `Trace` of NVML samples and the `Card` they came from; `recorded()` loads the
  H100 recording shipped in `labsupport/data` (the stand-in where no GPU is present).
- `nvml`: samples a live card into a Trace (read-only: it never changes a clock or a limit).
- `reasons`: the clock event reasons bitmask as NVIDIA documents it, bit by bit.
- `dcgm`: what dcgm-exporter exports for a card (field names, units, labels), scraped from a
  Trace.
- `promtool`: runs Prometheus rule files over series with the real `promtool test rules` and
  reads back which alerts fired when.
- `bandwidth`: memory-bandwidth workloads (copies, GEMM, GEMV, block copies) timed on the CPU
  or a GPU, with the duty cycles the usual dashboards show beside them.
- `gpu_load`: a sustained GEMM on a GPU in a child process, for sampling under load.
"""
