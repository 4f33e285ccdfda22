"""Sample a live NVIDIA GPU through NVML into a `Trace`: the real thing where a GPU is present.

    >>> from labsupport.telemetry import nvml
    >>> nvml.available() in (True, False)
    True
    >>> if nvml.available():  # doctest: +SKIP
    ...     with nvml.Sampler(interval_s=0.1) as s:
    ...         s.mark("idle")
    ...         time.sleep(1.0)
    ...     live = s.trace()

What it reads per sample (pynvml, `nvidia-ml-py`): temperature (`nvmlDeviceGetTemperature`),
SM and memory clocks, power (`nvmlDeviceGetPowerUsage`), the clock event reasons bitmask
(`nvmlDeviceGetCurrentClocksEventReasons`, the old `...ThrottleReasons` on older bindings),
utilization.gpu and .memory (`nvmlDeviceGetUtilizationRates`), GPM DRAM bandwidth utilisation
between two samples (`nvmlGpmMetricsGet` with `NVML_GPM_METRIC_DRAM_BW_UTIL`, Hopper and later),
memory used, and the thermal and power violation counters (`nvmlDeviceGetViolationStatus`). The
card's own limits come from `nvmlDeviceGetTemperatureThreshold`, the enforced power limit, the
maximum clocks and the memory bus width. NVML only reads: nothing here changes a clock, a power
limit or any other setting of the card, and sampling creates no CUDA context.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np

from labsupport.telemetry.trace import COLUMNS, Card, Trace


class NvmlUnavailable(RuntimeError):
    """No NVIDIA driver or no NVML here: the lab runs its recorded stand-in instead."""


def _pynvml():
    try:
        import pynvml
    except ImportError as exc:  # nvidia-ml-py is a dependency; a broken install reads as none
        raise NvmlUnavailable("pynvml (nvidia-ml-py) is not importable") from exc
    return pynvml


def available() -> bool:
    """True when NVML initialises and sees at least one GPU."""
    from labsupport import device

    if not device.nvidia_driver_present():
        return False
    try:
        nv = _pynvml()
        nv.nvmlInit()
    except Exception:
        return False
    try:
        return nv.nvmlDeviceGetCount() > 0
    except Exception:
        return False
    finally:
        nv.nvmlShutdown()


def _try(fn, *args, default=None):
    try:
        return fn(*args)
    except Exception:  # NVML_ERROR_NOT_SUPPORTED and friends: the card does not report it
        return default


def card(index: int = 0) -> Card:
    """The card's name and own limits (thresholds, power limit, maximum clocks, bus width)."""
    nv = _pynvml()
    nv.nvmlInit()
    try:
        return _card(nv, nv.nvmlDeviceGetHandleByIndex(index))
    finally:
        nv.nvmlShutdown()


def _card(nv, handle) -> Card:
    def text(value):
        return value.decode() if isinstance(value, bytes) else str(value)

    def threshold(kind: str):
        return _try(nv.nvmlDeviceGetTemperatureThreshold, handle, getattr(nv, kind))

    limit_mw = _try(nv.nvmlDeviceGetEnforcedPowerLimit, handle)
    return Card(
        name=text(nv.nvmlDeviceGetName(handle)),
        driver=text(_try(nv.nvmlSystemGetDriverVersion, default="")),
        slowdown_c=threshold("NVML_TEMPERATURE_THRESHOLD_SLOWDOWN"),
        shutdown_c=threshold("NVML_TEMPERATURE_THRESHOLD_SHUTDOWN"),
        gpu_max_op_c=threshold("NVML_TEMPERATURE_THRESHOLD_GPU_MAX"),
        mem_max_op_c=threshold("NVML_TEMPERATURE_THRESHOLD_MEM_MAX"),
        power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
        max_sm_mhz=_try(nv.nvmlDeviceGetMaxClockInfo, handle, nv.NVML_CLOCK_SM),
        max_mem_mhz=_try(nv.nvmlDeviceGetMaxClockInfo, handle, nv.NVML_CLOCK_MEM),
        mem_bus_width_bits=_try(nv.nvmlDeviceGetMemoryBusWidth, handle),
    )


def _reasons_fn(nv):
    new = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
    return new or nv.nvmlDeviceGetCurrentClocksThrottleReasons


class _Gpm:
    """GPM DRAM bandwidth utilisation between consecutive samples (Hopper and later)."""

    def __init__(self, nv, handle):
        self.nv, self.handle, self.last = nv, handle, None
        support = _try(nv.nvmlGpmQueryDeviceSupport, handle)
        self.supported = bool(support is not None and support.isSupportedDevice)

    def read(self) -> float:
        if not self.supported:
            return math.nan
        nv = self.nv
        sample = nv.nvmlGpmSampleAlloc()
        nv.nvmlGpmSampleGet(self.handle, sample)
        value = math.nan
        if self.last is not None:
            query = nv.c_nvmlGpmMetricsGet_t()
            query.version = nv.NVML_GPM_METRICS_GET_VERSION
            query.numMetrics = 1
            query.sample1, query.sample2 = self.last, sample
            query.metrics[0].metricId = nv.NVML_GPM_METRIC_DRAM_BW_UTIL
            nv.nvmlGpmMetricsGet(query)
            if query.metrics[0].nvmlReturn == nv.NVML_SUCCESS:
                value = float(query.metrics[0].value)
            nv.nvmlGpmSampleFree(self.last)
        self.last = sample
        return value

    def close(self) -> None:
        if self.last is not None:
            _try(self.nv.nvmlGpmSampleFree, self.last)
            self.last = None


class Sampler:
    """Samples card `index` every `interval_s` on a thread, from `start()` (or `with`) until
    `stop()`; `mark(label)` labels the samples that follow (a workload's phase)."""

    def __init__(self, index: int = 0, interval_s: float = 0.1):
        self.index, self.interval_s = index, interval_s
        self._rows: list[tuple] = []
        self._label = "start"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._card: Card | None = None
        self.error: str | None = None

    def mark(self, label: str) -> None:
        self._label = label

    def start(self) -> Sampler:
        nv = _pynvml()
        try:
            nv.nvmlInit()
        except Exception as exc:
            raise NvmlUnavailable(f"NVML did not initialise: {exc}") from exc
        handle = nv.nvmlDeviceGetHandleByIndex(self.index)
        self._card = _card(nv, handle)
        self._thread = threading.Thread(target=self._run, args=(nv, handle), daemon=True)
        self._thread.start()
        return self

    def _run(self, nv, handle) -> None:
        gpm, reasons = _Gpm(nv, handle), _reasons_fn(nv)
        t0 = time.monotonic()
        try:
            while not self._stop.is_set():
                util = nv.nvmlDeviceGetUtilizationRates(handle)
                thermal = _try(nv.nvmlDeviceGetViolationStatus, handle, nv.NVML_PERF_POLICY_THERMAL)
                power = _try(nv.nvmlDeviceGetViolationStatus, handle, nv.NVML_PERF_POLICY_POWER)
                self._rows.append(
                    (
                        time.monotonic() - t0,
                        nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU),
                        nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM),
                        nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_MEM),
                        nv.nvmlDeviceGetPowerUsage(handle) / 1000.0,
                        reasons(handle),
                        util.gpu,
                        util.memory,
                        gpm.read(),
                        nv.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
                        math.nan if thermal is None else thermal.violationTime,
                        math.nan if power is None else power.violationTime,
                        self._label,
                    )
                )
                self._stop.wait(self.interval_s)
        except Exception as exc:  # a driver error ends the sampling; the trace so far stays
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            gpm.close()

    def stop(self) -> Sampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
            _try(_pynvml().nvmlShutdown)
        return self

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def trace(self) -> Trace:
        """What was sampled, as a Trace (one phase label per sample)."""
        rows = list(self._rows)
        columns = {
            name: np.array([row[i] for row in rows], dtype=float) for i, name in enumerate(COLUMNS)
        }
        phases = np.array([row[-1] for row in rows])
        card = self._card or Card(name="unknown")
        source = f"sampled live on {card.name} (driver {card.driver}) every {self.interval_s} s"
        return Trace(columns, phases, card, source, notes={"error": self.error})
