"""The GEMM load: its arithmetic here, the real run on a GPU."""

import pytest

from labsupport.telemetry import gpu_load


def test_gemm_flops():
    assert gpu_load.gemm_flops(2) == 16


@pytest.mark.gpu
@pytest.mark.timeout(180)
def test_run_gemm_keeps_the_card_busy():
    run = gpu_load.run_gemm(seconds=3.0, n=4096)
    assert run["seconds"] >= 3.0 and run["iterations"] > 0 and run["tflops"] > 1
