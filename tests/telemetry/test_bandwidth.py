"""Workloads count their bytes and operations; measuring them returns data, on CPU and GPU."""

import pytest

from labsupport import wire
from labsupport.telemetry import bandwidth as bw

MiB = 2**20


def test_bytes_and_flops_per_repetition():
    assert bw.Workload("c", "copy", size_bytes=MiB).bytes_per_rep() == (MiB, MiB)
    g = bw.Workload("g", "gemm", n=4, element_bytes=2)
    assert g.bytes_per_rep() == (64, 32) and g.flops_per_rep() == 128
    v = bw.Workload("v", "gemv", n=3, cols=5)
    assert v.bytes_per_rep() == ((15 + 5) * 4, 12) and v.flops_per_rep() == 30
    b = bw.Workload("b", "batched_gemm", n=3, cols=5, batch=2)
    assert b.bytes_per_rep() == ((15 + 10) * 4, 24) and b.flops_per_rep() == 60
    k = bw.Workload("k", "block_copies", size_bytes=4096, pool_bytes=MiB, blocks=8)
    assert k.bytes_per_rep() == (8 * 4096, 8 * 4096) and k.flops_per_rep() == 0
    with pytest.raises(ValueError, match="unknown kind"):
        bw.Workload("x", "teleport").bytes_per_rep()


def test_measure_on_the_cpu_keeps_totals_and_a_reading():
    works = [
        bw.Workload("copy", "copy", size_bytes=MiB),
        bw.Workload("blocks", "block_copies", size_bytes=4096, pool_bytes=4 * MiB, blocks=16),
        bw.Workload("gemm", "gemm", n=64),
    ]
    out = bw.measure(works, device="cpu", min_s=0.02, windows=2)
    assert [m.name for m in out] == ["copy", "blocks", "gemm"]
    for m, w in zip(out, works, strict=True):
        read, written = w.bytes_per_rep()
        assert m.bytes_read == read * m.repeats and m.bytes_written == written * m.repeats
        assert m.flops == w.flops_per_rep() * m.repeats
        assert m.seconds >= 0.02 and 0 < m.readings["cpu_util"] <= 100
    assert wire.loads(wire.dumps(out)) == out  # crosses a process boundary as data


@pytest.mark.timeout(120)
def test_measure_in_child_runs_in_a_fresh_process():
    out = bw.measure_in_child([bw.Workload("copy", "copy", size_bytes=MiB)], min_s=0.02, windows=1)
    assert out[0].device == "cpu" and out[0].repeats > 0


@pytest.mark.gpu
@pytest.mark.timeout(300)
def test_measure_on_a_gpu_reads_nvml_and_gpm_beside_each_workload():
    works = [
        bw.Workload("copy", "copy", size_bytes=1024 * MiB, element_bytes=2),
        bw.Workload("gemm", "gemm", n=8192, element_bytes=2),
    ]
    copy, gemm = bw.measure_in_child(works, device="cuda", min_s=1.0, windows=2)
    assert copy.readings["nvml_util_mem"] > 50 and gemm.readings["nvml_util_gpu"] > 90
    assert gemm.flops / gemm.seconds > 1e14  # a real GEMM on a datacenter GPU: > 100 TFLOP/s
