import pytest

from labsupport import device


def test_environment_names_every_version():
    env = device.environment()
    for key in ("device", "driver", "driver_cuda", "cuda_runtime", "torch", "python"):
        assert env[key], key


@pytest.mark.skipif(device.cuda_available(), reason="the no-GPU wording")
def test_banner_says_plainly_when_a_stand_in_runs():
    lines = []
    text = device.banner(gpu="real", stand_in="an allocator simulator", print_fn=lines.append)
    assert "STAND-IN" in text and "an allocator simulator" in text
    assert "CPU" in device.banner(gpu="optional", print_fn=lines.append)
    assert device.device_name() == "cpu"


def test_banner_rejects_an_unknown_need():
    with pytest.raises(ValueError, match="gpu must be one of"):
        device.banner(gpu="maybe", print_fn=lambda *_: None)


@pytest.mark.gpu
def test_gpu_is_named_and_memory_readable():
    assert device.device_name() != "cpu"
    assert device.gpu_memory_used_bytes() > 0
    assert "real GPU" in device.banner(gpu="real", print_fn=lambda *_: None)
