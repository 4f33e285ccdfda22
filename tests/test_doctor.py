import dataclasses

import torch

from labsupport import device, doctor, labs


def test_one_line_per_concern_and_a_fix_for_each_warning():
    lines = doctor.run_checks()
    whats = {line.what for line in lines}
    assert {"torch", "NVML", "/dev/shm", "sandbox"} <= whats
    assert "GPU" in whats or "driver" in whats
    for line in lines:
        assert line.status in ("OK", "WARN", "INFO")
        if line.status == "WARN":
            assert line.fix, f"{line.what} warns without saying how to fix it"
            assert "fix:" in str(line)


def test_a_cuda_torch_without_a_driver_is_a_warning(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(device, "nvidia_driver_present", lambda: False)
    (line,) = doctor._torch()
    assert line.status == "WARN" and "no NVIDIA driver" in line.detail
    assert "download.pytorch.org/whl/cpu" in line.fix


def test_services_are_checked_only_for_ready_labs(monkeypatch):
    redis_lab = dataclasses.replace(labs.get(291), services=("redis",))
    monkeypatch.setattr(labs, "done", lambda: [])
    assert not doctor._services()
    monkeypatch.setattr(labs, "done", lambda: [redis_lab])
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    (line,) = doctor._services()
    assert line.what == "redis-server" and line.status == "WARN" and "lab 291" in line.detail
