"""What hardware is here, and the banner every lab prints first.

    >>> from labsupport import device
    >>> device.cuda_available() in (True, False)
    True
    >>> sorted(device.environment())[:3]
    ['cuda_runtime', 'device', 'driver']

Nothing here initialises CUDA in the calling process unless asked: `cuda_available()` uses
`torch.cuda.is_available()`, which queries the driver without creating a context.
"""

from __future__ import annotations

import functools
import platform
import sys

GPU_NEEDS = ("real", "optional", "none")


def nvidia_driver_present() -> bool:
    """A cheap look for an NVIDIA driver (no torch import): its device nodes or proc entry."""
    import os

    return any(
        os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/dxg")
    )


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True when torch sees a usable NVIDIA GPU (False at once where no driver is installed)."""
    if not nvidia_driver_present():
        return False
    try:
        import torch
    except ImportError:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver install must read as "no GPU", not crash a lab
        return False


def device_name() -> str:
    """The GPU's marketing name ("NVIDIA H100 80GB HBM3"), or "cpu"."""
    if not cuda_available():
        return "cpu"
    import torch

    return torch.cuda.get_device_name(0)


def nvml_info() -> dict:
    """Driver version and the CUDA version the driver supports, via NVML ({} without NVML)."""
    try:
        import pynvml
    except ImportError:
        return {}
    try:
        pynvml.nvmlInit()
    except Exception:
        return {}
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        info = {
            "driver": driver.decode() if isinstance(driver, bytes) else driver,
            "driver_cuda": f"{cuda // 1000}.{(cuda % 1000) // 10}",
            "gpu_count": pynvml.nvmlDeviceGetCount(),
        }
        return info
    except Exception:
        return {}
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def environment() -> dict:
    """Versions that decide a lab's behaviour, for reports and notebooks.

    Keys: device, driver, driver_cuda, cuda_runtime, torch, python, platform.
    """
    try:
        import torch

        torch_version = torch.__version__
        cuda_runtime = torch.version.cuda or "none (CPU build)"
    except ImportError:
        torch_version, cuda_runtime = "not installed", "none"
    info = nvml_info()
    return {
        "device": device_name(),
        "driver": info.get("driver", "none"),
        "driver_cuda": info.get("driver_cuda", "none"),
        "cuda_runtime": cuda_runtime,
        "torch": torch_version,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def banner(*, gpu: str, stand_in: str = "", print_fn=print) -> str:
    """Print (and return) what this lab runs on here.

    gpu: the lab's need, "real" (the failure happens on the GPU), "optional" or "none".
    stand_in: what runs instead when there is no GPU, said plainly.
    """
    if gpu not in GPU_NEEDS:
        raise ValueError(f"gpu must be one of {GPU_NEEDS}, got {gpu!r}")
    env = environment()
    versions = f"torch {env['torch']}, CUDA runtime {env['cuda_runtime']}, Python {env['python']}"
    if cuda_available():
        text = (
            f"GPU: {env['device']} (driver {env['driver']}, driver CUDA {env['driver_cuda']}); "
            f"{versions}. This lab runs on the real GPU."
        )
    elif gpu == "real":
        text = (
            "NO GPU FOUND - STAND-IN MODE. This lab's failure happens on a GPU; here it runs "
            f"{stand_in or 'a stand-in'} instead. Numbers are the stand-in's, not a GPU's. "
            f"({versions})"
        )
    elif gpu == "optional":
        text = (
            "No GPU found: the same code runs on the CPU"
            + (f" ({stand_in})" if stand_in else "")
            + f"; the mechanism is the same, absolute times are not. ({versions})"
        )
    else:
        text = f"This lab needs no GPU. ({versions})"
    line = "=" * min(100, max(40, len(text)))
    print_fn(f"{line}\n{text}\n{line}")
    return text


def gpu_memory_used_bytes() -> int | None:
    """Device memory in use on GPU 0 as the driver sees it (all processes), or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
