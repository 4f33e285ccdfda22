"""A sustained GEMM on the GPU, in a child process, while this process samples NVML.

    >>> from labsupport.telemetry import gpu_load
    >>> gpu_load.gemm_flops(8192)
    1099511627776
    >>> run = gpu_load.run_gemm(seconds=20)  # doctest: +SKIP
    >>> run["tflops"] > 100  # doctest: +SKIP
    True

`run_gemm` starts a fresh interpreter (`labsupport.isolate`) that multiplies two n x n bf16
matrices in a loop for `seconds` and reports what it did (iterations, seconds, TFLOP/s). The
card does what it always does under such a load: it draws up to its power limit and its power
management sets the clocks. Nothing here changes a clock, a power limit or any other setting.
"""

from __future__ import annotations

import time


def gemm_flops(n: int) -> int:
    """Floating-point operations of one n x n by n x n matrix product (2 n^3)."""
    return 2 * n**3


def gemm_for(seconds: float, n: int = 8192, dtype: str = "bfloat16") -> dict:
    """In the child: multiply two n x n matrices on cuda:0 for `seconds`; what it achieved."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("gemm_for needs a CUDA GPU")
    kind = getattr(torch, dtype)
    a = torch.randn(n, n, device="cuda", dtype=kind)
    b = torch.randn(n, n, device="cuda", dtype=kind)
    c = a @ b
    torch.cuda.synchronize()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(8):  # a few launches per check of the clock keep the GPU fed
            torch.matmul(a, b, out=c)
        torch.cuda.synchronize()
        done += 8
    took = time.perf_counter() - start
    return {
        "iterations": done,
        "seconds": took,
        "n": n,
        "dtype": dtype,
        "tflops": gemm_flops(n) * done / took / 1e12,
        "device": torch.cuda.get_device_name(0),
    }


def run_gemm(seconds: float, n: int = 8192, dtype: str = "bfloat16") -> dict:
    """Run `gemm_for` in a fresh process (the notebook's kernel keeps no CUDA context)."""
    from labsupport import isolate

    result = isolate.run_function(
        "labsupport.telemetry.gpu_load:gemm_for", seconds, n, dtype, timeout_s=seconds + 120
    )
    if not result.ok:
        raise RuntimeError(f"the GEMM load failed: {result.error}")
    return result.value
