"""`srelab doctor`: is this machine ready for the labs? One line per check, OK or WARN + fix.

>>> from labsupport import doctor
>>> lines = doctor.run_checks()
>>> {line.status for line in lines} <= {"OK", "WARN", "INFO"}
True
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from labsupport import device


@dataclass
class Line:
    status: str  # OK | WARN | INFO
    what: str
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.status:<4}  {self.what:<14} {self.detail}"
        return text + (f"\n      fix: {self.fix}" if self.fix and self.status == "WARN" else "")


def _gpu() -> list[Line]:
    env = device.environment()
    if not device.cuda_available():
        return [
            Line(
                "INFO",
                "GPU",
                "none found: GPU labs run their labelled stand-ins",
                "on a GPU box, install the NVIDIA driver and a CUDA build of torch",
            )
        ]
    lines = [Line("OK", "GPU", env["device"])]
    lines.append(Line("OK", "driver", f"{env['driver']} (supports CUDA {env['driver_cuda']})"))
    return lines


def _torch() -> list[Line]:
    try:
        import torch
    except ImportError:
        return [Line("WARN", "torch", "not installed", "pip install torch")]
    build = torch.version.cuda
    label = f"{torch.__version__} ({'CUDA ' + build if build else 'CPU build'})"
    if build and not device.nvidia_driver_present():
        return [
            Line(
                "WARN",
                "torch",
                f"{label} on a machine with no NVIDIA driver: several GB of CUDA libraries "
                "that nothing here can use",
                "pip install --force-reinstall torch --index-url "
                "https://download.pytorch.org/whl/cpu (or ./setup.sh, which does it)",
            )
        ]
    lines = [Line("OK", "torch", label)]
    if not device.cuda_available():
        return lines
    info = device.nvml_info()
    if build and info.get("driver_cuda"):
        need = tuple(int(x) for x in build.split(".")[:2])
        have = tuple(int(x) for x in info["driver_cuda"].split(".")[:2])
        if have[0] < need[0]:
            lines.append(
                Line(
                    "WARN",
                    "CUDA compat",
                    f"torch built for CUDA {build}, driver supports {info['driver_cuda']}",
                    "upgrade the driver or install a torch wheel for your CUDA major",
                )
            )
        else:
            lines.append(
                Line(
                    "OK",
                    "CUDA compat",
                    f"torch CUDA {build} on a driver for CUDA {info['driver_cuda']}",
                )
            )
    major, minor = torch.cuda.get_device_capability(0)
    arch = f"sm_{major}{minor}"
    arch_list = torch.cuda.get_arch_list()
    compatible = arch in arch_list or any(
        a.startswith("compute_") and int(a[8:]) <= major * 10 + minor for a in arch_list
    )
    if compatible:
        lines.append(Line("OK", "arch", f"{arch} is in torch's arch list"))
    else:
        lines.append(
            Line(
                "WARN",
                "arch",
                f"{arch} not in {' '.join(arch_list)}",
                "install a torch build that includes your GPU's architecture",
            )
        )
    return lines


def _nvml() -> Line:
    try:
        import pynvml
    except ImportError:
        return Line("WARN", "NVML", "nvidia-ml-py not installed", "pip install nvidia-ml-py")
    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return Line("OK", "NVML", "initialised")
    except Exception as exc:
        status = "WARN" if device.cuda_available() else "INFO"
        return Line(
            status,
            "NVML",
            f"unavailable ({exc.__class__.__name__})",
            "NVML ships with the NVIDIA driver; without a GPU labs use recorded traces",
        )


def _shm() -> Line:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return Line("WARN", "/dev/shm", "missing", "mount a tmpfs on /dev/shm")
    size_mib = st.f_frsize * st.f_blocks / 2**20
    if size_mib < 1024:
        return Line(
            "WARN",
            "/dev/shm",
            f"{size_mib:.0f} MiB (DataLoader workers need more)",
            "docker run --shm-size=8g (or --ipc=host); in k8s an emptyDir medium: Memory",
        )
    return Line("OK", "/dev/shm", f"{size_mib:.0f} MiB")


def _ptrace() -> Line:
    if not shutil.which("py-spy"):
        return Line("WARN", "py-spy", "not found", "pip install py-spy")
    try:
        scope = int(open("/proc/sys/kernel/yama/ptrace_scope").read().strip())
    except (OSError, ValueError):
        scope = 0
    if os.geteuid() == 0 or scope == 0:
        return Line(
            "OK",
            "ptrace",
            f"py-spy can attach (ptrace_scope={scope}, "
            f"{'root' if os.geteuid() == 0 else 'same user'})",
        )
    return Line(
        "WARN",
        "ptrace",
        f"ptrace_scope={scope}: py-spy dump of another process fails",
        "sudo sysctl kernel.yama.ptrace_scope=0, or in Docker --cap-add SYS_PTRACE",
    )


SERVICES = {  # a lab's `services` entry -> the program it needs and how to get it
    "redis": ("redis-server", "apt-get install redis-server (or brew install redis)"),
    "promtool": ("promtool", "apt-get install prometheus"),
    "tini": ("tini", "apt-get install tini"),
}


def _services() -> list[Line]:
    """Programs the ready labs need; planned labs' needs are not this machine's problem yet."""
    from labsupport import labs

    lines = []
    for service, (program, fix) in SERVICES.items():
        users = [str(lab.number) for lab in labs.done() if service in lab.services]
        if not users:
            continue
        path = shutil.which(program)
        if path:
            lines.append(Line("OK", program, path))
        else:
            lines.append(Line("WARN", program, f"not found (lab {', '.join(users)} needs it)", fix))
    return lines


def _sandbox() -> Line:
    from labsupport import contain

    box = contain.sandbox()
    if box.mode == "namespaces":
        return Line("OK", "sandbox", "learner code is graded in user/mount/PID namespaces")
    return Line(
        "WARN",
        "sandbox",
        f"unavailable ({box.reason}): a graded notebook runs with your permissions",
        "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on "
        "Ubuntu 24.04 kernel.apparmor_restrict_unprivileged_userns=0), or grade as root",
    )


def run_checks() -> list[Line]:
    return [*_gpu(), *_torch(), _nvml(), _shm(), _ptrace(), _sandbox(), *_services()]
