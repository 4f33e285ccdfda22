"""Variants, the ticket, the recorded table and the lab's own measurement on this machine."""

import re

import pytest

from labsupport import device, labs
from labsupport.scenarios import bandwidth_blind_spot as scenario
from labsupport.scenarios.bandwidth_blind_spot import runs
from labsupport.telemetry import trace

MiB = 2**20


def test_variants_cycle_the_step_and_vary_the_sizes():
    vs = [scenario.variant(s) for s in range(6)]
    assert [v.step for v in vs[:3]] == list(scenario.STEPS)
    assert len({(v.step, v.step_size, v.small_bytes, v.gemm_n) for v in vs}) >= 5
    assert scenario.variant(2) == scenario.variant(2)
    names = [w.name for w in vs[0].workloads("cpu")]
    assert names[-1] == scenario.SERVICE and sum(n.startswith("copy-") for n in names) == 2
    gpu = vs[0].workloads("cuda")
    assert gpu[1].size_bytes == 4096 * MiB and gpu[3].n == 8192  # the recording's sizes
    with pytest.raises(ValueError):
        scenario.service_workload("teleport", 1, "cpu")


def test_the_ticket_names_the_claim_not_the_cause():
    text = scenario.page(scenario.variant(0))
    assert "DCGM_FI_DEV_MEM_COPY_UTIL" in text
    words = labs.get(296).cause_words
    assert not re.search("|".join(re.escape(w) for w in words), text, re.I)


def test_the_recorded_table_is_the_recording():
    rows = {r["workload"]: r for r in runs.recorded_table()}
    big = rows["large copies (4 GiB)"]
    assert big["nvml_util_mem"] == 100 and big["achieved_gbps"] == 3017.0
    # GPM reads the achieved share of the theoretical peak; NVML's utilisation reads 100 %
    share = 100 * big["achieved_gbps"] / trace.recorded().card.peak_bandwidth_gbps
    assert abs(big["gpm_dram_bw_util"] - share) < 1.0
    assert rows["small copies (1 MiB)"]["nvml_util_mem"] == 0


def test_evidence_carries_numbers_not_what_a_workload_is():
    m = runs.bandwidth.Measured("llm-serve step", "gemv", "cpu", 10, 2, 5, 0.5, 3, {"cpu_util": 9})
    ev = runs.evidence([m], "cpu")
    assert ev["theoretical_peak_gbps"] is None and ev["device"] == "cpu"
    assert "gemv" not in str(ev) and ev["runs"]["llm-serve step"]["bytes_read"] == 10


@pytest.mark.timeout(180)
def test_here_the_streaming_copy_reaches_the_measured_peak_and_a_weights_step_is_near_it():
    where = runs.device_for()
    v = scenario.variant(0)
    works = v.workloads(where)
    copies = [w for w in works if w.name.startswith("copy-")]
    measured = runs.measure_workloads(copies + [works[-1]], where)
    rate = {m.name: (m.bytes_read + m.bytes_written) / m.seconds for m in measured}
    peak = max(rate[w.name] for w in copies)
    assert rate[copies[-1].name] >= 0.9 * peak  # the lab's streaming copy is at the ceiling
    assert rate[scenario.SERVICE] >= 0.5 * peak  # a matrix read once per step is bound by it


@pytest.mark.gpu
@pytest.mark.timeout(600)
def test_on_a_gpu_the_copy_is_near_the_theoretical_peak_and_gpm_reads_its_share():
    assert device.cuda_available()
    v = scenario.variant(0)
    copies = [w for w in v.workloads("cuda") if w.name.startswith("copy-")]
    measured = runs.measure_workloads(copies, "cuda")
    ev = runs.evidence(measured, "cuda")
    theoretical = ev["theoretical_peak_gbps"]
    best = max(measured, key=lambda m: (m.bytes_read + m.bytes_written) / m.seconds)
    share = (best.bytes_read + best.bytes_written) / best.seconds / 1e9 / theoretical
    assert 0.75 <= share <= 1.0, f"{best.name}: {share:.2f} of {theoretical} GB/s"
    gpm = best.readings["gpm_dram_bw_util"]
    if gpm == gpm:  # Hopper and later: GPM reads the same share
        assert abs(gpm - 100 * share) < 10
