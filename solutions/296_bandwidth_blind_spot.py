# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 296 - Memory bandwidth nobody sees
#
# A capacity proposal says the serving cards have two thirds of their memory bandwidth to spare,
# on the strength of one dashboard number. You will measure how much bandwidth real workloads
# move against the most this machine can move, find what limits the serving step, and write the
# bandwidth alert the pool should have had, proven with the real `promtool` on readings recorded
# on an H100. About 30 minutes; the code runs in under a minute.

# %%
from labsupport import device, session
from labsupport.scenarios import bandwidth_blind_spot as scenario

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("296", seed=SEED)
v = scenario.variant(SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="real",
    stand_in="the NVML and GPM readings recorded on an NVIDIA H100 80GB HBM3 beside the same "
    "kinds of workloads, and the workloads measured on one CPU core with its CPU utilisation "
    "where a GPU would show NVML's",
)

# %% [markdown]
# ## 1. Incident
#
# The ticket, as it reached the SRE on call:

# %%
print(scenario.page(v))

# %% [markdown]
# `DCGM_FI_DEV_MEM_COPY_UTIL` is what `nvidia-smi` calls *utilization.memory*, and what most
# GPU dashboards label "memory bandwidth". Before you sign anything, measure.

# %% [markdown]
# ## 2. Reproduce
#
# ### What an H100 recorded
#
# An H100 ran three workloads while NVML was sampled every 0.1 s (`labsupport/data/
# nvml_trace_h100.md`): a loop of 1 MiB device-to-device copies, a loop of 4 GiB copies, and a
# bf16 GEMM loop. The copies' achieved bandwidth (bytes read plus written, per second) was
# measured by the recording script. Beside them, the steady readings of NVML's
# `utilization.gpu` and `utilization.memory` and of GPM's DRAM bandwidth utilisation
# (Hopper's GPU Performance Monitoring, `NVML_GPM_METRIC_DRAM_BW_UTIL`):

# %%
from labsupport.scenarios.bandwidth_blind_spot import runs

h100 = runs.recorded_card()
print(
    f"{h100.name}: memory clock {h100.max_mem_mhz} MHz x {h100.mem_bus_width_bits} bits x 2 per "
    f"clock = {h100.peak_bandwidth_gbps:.0f} GB/s theoretical"
)
print(f"{'workload':<22} {'achieved GB/s':>13} {'util.gpu':>9} {'util.memory':>12} {'GPM DRAM':>9}")
for row in runs.recorded_table():
    achieved = f"{row['achieved_gbps']:.0f}" if row["achieved_gbps"] else "-"
    print(
        f"{row['workload']:<22} {achieved:>13} {row['nvml_util_gpu']:>8.0f}% "
        f"{row['nvml_util_mem']:>11.0f}% {row['gpm_dram_bw_util']:>8.1f}%"
    )

# %% [markdown]
# ### This machine
#
# Now the workloads themselves, here: two streaming copies that nothing can cache (their best is
# the most this machine moves: **the measured peak**), small copies, a GEMM (its FLOP/s is the
# most arithmetic this machine does), and `llm-serve`'s hot step. Each runs in a fresh process
# (`labsupport.telemetry.bandwidth`) for a few windows; each record keeps its best window: the
# bytes it read and wrote, its floating-point operations, the seconds, and the readings a
# dashboard showed meanwhile. On a GPU they run in bf16 with NVML and GPM sampled beside them;
# without one they run on **one CPU core** in float32, a **stand-in** where the CPU utilisation
# of the process takes the place of NVML's readings (the banner says which). On the CPU the
# seconds are the workload's own CPU time: on a shared machine, time spent waiting for the core
# belongs to the other processes, and shows up only in the utilisation reading.

# %%
from labsupport import plots
from labsupport.scenarios.bandwidth_blind_spot import plots as lab_plots

where = runs.device_for()
measured = runs.measure(v, where)
evidence = runs.evidence(measured, where)
print(f"device: {evidence['device']} ({evidence['card']})")
print(
    f"{'run':<16} {'bytes read':>14} {'bytes written':>14} {'FLOPs':>15} {'seconds':>8}  readings"
)
for name, run in evidence["runs"].items():
    print(
        f"{name:<16} {run['bytes_read']:>14,} {run['bytes_written']:>14,} {run['flops']:>15,} "
        f"{run['seconds']:>8.3f}  {run['readings']}"
    )
_ = plots.show(lab_plots.readings({n: r["readings"] for n, r in evidence["runs"].items()}))

# %% [markdown]
# Before you read on: the readings are much alike. Do the workloads move alike?

# %% [markdown]
# ## 3. Diagnose
#
# **Exercise 1 (graded).** `achieved_gbps(run)`: the bandwidth one run achieved.
#
# **Exercise 2 (graded).** `diagnose(evidence)`: what limits `llm-serve`'s step on this machine,
# with its shares of the peaks measured here. It is graded on this run and on steps of other
# kinds measured during the check. Stuck? `hint("296", 1, "diagnose")` (up to 3 per exercise)
# gives a hint and notes it in your transcript.


# %% tags=["exercise"]
def achieved_gbps(run: dict) -> float:
    """The bandwidth a run achieved, in GB/s (1 GB = 1e9 bytes).

    run: {"bytes_read": ..., "bytes_written": ..., "flops": ..., "seconds": ...,
    "repeats": ..., "readings": {...}}; the byte counts are totals over all repetitions.
    """
    # BEGIN SOLUTION
    return (run["bytes_read"] + run["bytes_written"]) / run["seconds"] / 1e9
    # END SOLUTION


def diagnose(evidence: dict) -> dict:
    """What limits llm-serve's step, with its shares of the peaks measured on this machine.

    evidence["runs"] maps a run's name to its record: the streaming copies ("copy-..."),
    "small-copies", "gemm" and "llm-serve step". The measured bandwidth peak is the best
    achieved GB/s of the copy-... runs; the measured arithmetic peak is the gemm run's FLOP/s.
    Return {"bound": "memory bandwidth", "compute" or "overhead", "achieved_gbps": the step's,
    "share_of_peak_bandwidth": its GB/s over the bandwidth peak, "share_of_peak_flops": its
    FLOP/s over the arithmetic peak}.
    """
    # BEGIN SOLUTION
    run = evidence["runs"]
    peak_gbps = max(achieved_gbps(r) for name, r in run.items() if name.startswith("copy-"))
    peak_flops = run["gemm"]["flops"] / run["gemm"]["seconds"]
    step = run["llm-serve step"]
    gbps = achieved_gbps(step)
    share_bw = gbps / peak_gbps
    share_flops = step["flops"] / step["seconds"] / peak_flops
    if share_bw >= 0.5:
        bound = "memory bandwidth"
    elif share_flops >= 0.5:
        bound = "compute"
    else:
        bound = "overhead"
    return {
        "bound": bound,
        "achieved_gbps": gbps,
        "share_of_peak_bandwidth": share_bw,
        "share_of_peak_flops": share_flops,
    }
    # END SOLUTION


# %%
from labsupport import hint  # noqa: F401  (hint("296", 1, "diagnose"))

for name, run in evidence["runs"].items():
    print(f"{name:<16} {achieved_gbps(run):8.2f} GB/s")
found = diagnose(evidence)
print(found)

# %%
from labsupport import check

check("296")

# %% [markdown] tags=["reveal"]
# **What the readings measure.** NVML documents them (`nvidia-smi --help-query-gpu`):
#
# - `utilization.gpu`: *percent of time over the past sample period during which one or more
#   kernels was executing on the GPU*;
# - `utilization.memory` (`DCGM_FI_DEV_MEM_COPY_UTIL`): *percent of time over the past sample
#   period during which global (device) memory was being read or written*; the sample period is
#   between 1/6 s and 1 s depending on the product.
#
# Both are **duty cycles**: shares of time, not of bandwidth. On the recorded H100 the 4 GiB
# copies read 100 % while moving 3017 GB/s, 90 % of the theoretical 3352: the reading is pegged
# before the memory is, and it cannot show the headroom between 90 % and 100 %, nor tell a
# workload at 40 % of the bandwidth that touches memory all the time from one at the ceiling.
# The 1 MiB copies read 0 %: the same megabyte is copied again and again and stays in the 50 MB
# L2 cache, so device memory is idle while the GPU copies at 205 GB/s, each copy a kernel launch
# (launch-bound). GPM's DRAM bandwidth utilisation is *percentage of DRAM bw used vs theoretical
# maximum* (nvml.h): 90 % for 3017 of 3352 GB/s, exactly the achieved share. DCGM's
# `DCGM_FI_PROF_DRAM_ACTIVE` is that reading (DCGM maps the field to
# `NVML_GPM_METRIC_DRAM_BW_UTIL` on Hopper).
#
# On the CPU the same lesson is starker: the process's CPU utilisation is a duty cycle too, and
# every workload keeps one core busy whether it moves a few MB/s through the cache, streams
# gigabytes, or multiplies matrices. Here is each run's reading beside its measured share of the
# peak:

# %% tags=["reveal"]
reading = "cpu_util" if where == "cpu" else "nvml_util_mem"
peak = max(achieved_gbps(r) for n, r in evidence["runs"].items() if n.startswith("copy-"))
rows = {
    n: (r["readings"][reading], 100 * achieved_gbps(r) / peak) for n, r in evidence["runs"].items()
}
_ = plots.show(
    lab_plots.shares(rows, reading=lab_plots.LABELS[reading], title="reading vs measured share")
)

# %% [markdown] tags=["reveal"]
# **What bounds `llm-serve`'s step** is one of three things, and only measured shares tell them
# apart:
#
# - a step that reads a matrix once per token (a decode step reading the model's weights) sits
#   near the memory's ceiling: **bandwidth-bound**. More of it, or a second model on the card,
#   slows it down, whatever `utilization.memory` said. (On the CPU a read-mostly step can even
#   beat the copy's count: a CPU copy also reads every line it writes, write-allocate, which the
#   byte count of a copy does not include.)
# - a step that multiplies a matrix by a whole batch at once reuses each byte many times: it is
#   near the arithmetic peak and far from the bandwidth one, **compute-bound**;
# - a step that copies blocks one call at a time (a KV-cache swap done block by block) is near
#   neither: its time goes to issuing calls (CUDA launches, dispatcher overhead), **overhead-
#   bound**. The fix there is fewer, larger copies, not more bandwidth.

# %% tags=["reveal"]
print(f"llm-serve's step here: {found['bound']}, {found['achieved_gbps']:.2f} GB/s")
print(
    f"  {found['share_of_peak_bandwidth']:.0%} of the measured bandwidth peak, "
    f"{found['share_of_peak_flops']:.0%} of the measured FLOP/s peak"
)

# %% [markdown]
# ## 4. Fix
#
# The pool's bandwidth alert pages on `DCGM_FI_DEV_MEM_COPY_UTIL > 90` for 5 minutes. Here is
# one night of a pool of H100s as dcgm-exporter exported them, every scrape a recorded H100
# reading (`labsupport/scenarios/bandwidth_blind_spot/pool.py`): GPUs running GEMMs, small
# copies, resting, loading models in 90-second bursts, and one whose memory stays at its ceiling
# from some point on:

# %%
from labsupport.scenarios.bandwidth_blind_spot import pool

night = pool.build(v.pool_seed)
_ = plots.show(lab_plots.pool_panels(night))
print(pool.TEAM_RULES)

# %% [markdown]
# **Exercise 3 (graded).** `bandwidth_alert_rules()`: the Prometheus rule file (YAML) for the
# pool's bandwidth alert, over dcgm-exporter's metrics (`DCGM_FI_DEV_GPU_UTIL`,
# `DCGM_FI_DEV_MEM_COPY_UTIL`, `DCGM_FI_PROF_DRAM_ACTIVE`, `DCGM_FI_DEV_SM_CLOCK`,
# `DCGM_FI_DEV_POWER_USAGE`, ...; labels `gpu`, `hostname`, `modelName`, ...). It must page for a
# GPU whose memory bandwidth stays at the ceiling measured on the card, within 10 minutes, and
# never for a GEMM, small copies, rest or a model load; it must read the reading that is a
# bandwidth, and keep the `gpu` label. The check reads the metrics your alerts use and runs them
# in promtool over three nights. `hint("296", 1, "bandwidth_alert_rules")` if you want one.


# %% tags=["exercise"]
def bandwidth_alert_rules() -> str:
    """The pool's memory-bandwidth alert, as a Prometheus rule file (YAML text)."""
    # BEGIN SOLUTION
    return """\
groups:
- name: gpu-capacity
  rules:
  # DRAM bandwidth used vs the theoretical maximum (GPM on Hopper). Copies top out at ~0.90
  # on an H100: page at ~80 % of that measured ceiling, sustained (a model load is not it).
  - alert: MemoryBandwidthSaturated
    expr: DCGM_FI_PROF_DRAM_ACTIVE > 0.72
    for: 5m
    labels: {severity: page}
    annotations:
      summary: "GPU {{ $labels.gpu }} on {{ $labels.hostname }}: DRAM bandwidth at its ceiling"
"""
    # END SOLUTION


# %%
mine = pool.score(bandwidth_alert_rules(), {"tonight": night})
team = pool.score(pool.TEAM_RULES, {"tonight": night})
print("the team's rule:", team.summary())
print("your rule:      ", mine.summary())

# %% [markdown]
# On these recorded readings the team's rule pages right too: the H100's copies at the ceiling
# do read 100 %. What it cannot do is measure: it has no value between "busy all the time" and
# the ceiling, no headroom to plan with, and no threshold relative to what the card can move. The
# check grades the reading your rule watches as well as its pages.

# %%
check("296")

# %% [markdown]
# ## 5. Verify
#
# The headline, measured in this run: the GEMM's memory-bandwidth use as the utilisation reading
# shows it, against its measured share of the bandwidth peak.

# %%
from labsupport import headline

gemm = evidence["runs"]["gemm"]
shown = gemm["readings"][reading]
share = 100 * achieved_gbps(gemm) / peak
_ = plots.show(
    plots.before_after(
        {lab_plots.LABELS[reading]: shown, "measured share of the peak": share},
        unit="%",
        title="the GEMM's memory bandwidth use",
    )
)
stream = 100 * achieved_gbps(evidence["runs"][v.workloads(where)[1].name]) / peak
_ = headline.record(
    "296",
    metric="the GEMM's memory-bandwidth use: utilisation reading vs measured share of the peak",
    before=shown,
    after=share,
    unit="%",
    seed=SEED,
    reading=reading,
    peak_gbps=round(peak, 2),
    streaming_copy_share_of_peak=round(stream, 1),
    step_bound=found["bound"],
    step_share_of_peak_bandwidth=round(100 * found["share_of_peak_bandwidth"], 1),
    device=device.device_name(),
    recorded_h100_copy_gbps=3017.0,
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** How do you monitor GPU memory-bandwidth utilisation? nvidia-smi does
# not show it: do you use Nsight Systems or DCGM?
#
# **Model answer.** In production, DCGM through dcgm-exporter, but not the field most dashboards
# use. `DCGM_FI_DEV_MEM_COPY_UTIL` (nvidia-smi's utilization.memory) is a duty cycle: the percent
# of time memory was read or written in the last sample period, which pegs at 100 % before the
# bandwidth does. The bandwidth reading is `DCGM_FI_PROF_DRAM_ACTIVE`, the ratio of cycles the
# DRAM interface is busy moving data, which on Hopper is GPM's DRAM bandwidth utilisation
# (`NVML_GPM_METRIC_DRAM_BW_UTIL`, also readable from pynvml). It is a profiling field: DCGM's
# profiling module must run, it is in dcgm-exporter's default counters CSV, and it conflicts
# with Nsight's counters (`dcgmi profile --pause` before an Nsight session, `--resume` after).
# I alert on it against the ceiling I measured on the card (copies reach ~90 % of the
# theoretical 3.35 TB/s on an H100, so 0.9 is "full"), sustained for minutes. For a service I
# also compute achieved bandwidth from first principles: bytes a step must move (a decode step:
# the weights plus the KV cache it reads) over the step time, against the measured peak. For
# depth, Nsight Compute (`dram__throughput.avg.pct_of_peak_sustained_elapsed` per kernel) or
# Nsight Systems' GPU metrics sampling (`nsys profile --gpu-metrics-devices=all`).
#
# **Where the classic answer is wrong.** "Use `DCGM_FI_DEV_MEM_COPY_UTIL`":
#
# - it is a share of time, not of bandwidth (NVML's own words, and NVIDIA's maintainers say so
#   in dcgm-exporter#147); on the recorded H100 it reads 100 % for copies at 90 % of the
#   theoretical bandwidth and cannot say more;
# - it reads device memory only: copies served from the L2 cache read 0 % while the GPU is busy
#   copying (the recorded 1 MiB copies, 205 GB/s, launch-bound);
# - "33 % memory utilisation, so two thirds of the bandwidth is free" adds a duty cycle as if it
#   were a bandwidth: the only way to know the headroom is a bandwidth reading against a measured
#   ceiling, and the only way to know what limits a step is its shares of both the bandwidth and
#   the arithmetic peaks.
#
# **Follow-up questions an interviewer asks.**
#
# - Decode is memory-bound: estimate its bandwidth need. (Weights + KV cache bytes read per step
#   / step time: an 8B model in bf16 at 50 steps/s needs ~800 GB/s for the weights alone.)
# - Why does `DCGM_FI_PROF_DRAM_ACTIVE` read 0.9, not 1.0, for a copy at full speed? (DRAM
#   refresh, read/write turnarounds, row switches: the theoretical figure is clock x bus width.)
# - A profiling field reads blank while someone runs Nsight Compute. Why? (The profiling
#   counters are exclusive; pause DCGM's profiling for the session.)
# - `utilization.gpu` reads 99 %: is the GPU saturated? (It says one kernel was running the whole
#   time; `DCGM_FI_PROF_SM_ACTIVE` and `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` say how much of the SMs
#   and tensor cores it used.)
# - The step is overhead-bound. What do you do? (Fewer, larger operations: batch the block
#   copies into one gather kernel, CUDA graphs to cut launch cost, larger batches.)
#
# **References.**
#
# - nvidia-smi query fields, utilization.gpu and utilization.memory (`nvidia-smi
#   --help-query-gpu`): https://docs.nvidia.com/deploy/nvidia-smi/index.html
# - NVML GPM metrics (`NVML_GPM_METRIC_DRAM_BW_UTIL`, "percentage of DRAM bw used vs theoretical
#   maximum"): https://docs.nvidia.com/deploy/nvml-api/group__nvmlGpmStructs.html
# - DCGM field identifiers (`DCGM_FI_PROF_DRAM_ACTIVE`, 1005) and its GPM mapping
#   (`dcgmlib/src/dcgm_fields.cpp`, `DcgmFieldIdToNvmlGpmMetricId`): https://github.com/NVIDIA/DCGM
# - dcgm-exporter's counters (`etc/default-counters.csv`, `etc/dcp-metrics-included.csv`) and
#   its maintainers on MEM_COPY_UTIL (issue #147): https://github.com/NVIDIA/dcgm-exporter
# - `dcgmi profile --pause/--resume`:
#   https://docs.nvidia.com/datacenter/dcgm/latest/user-guide/feature-overview.html
# - Nsight Compute memory metrics (`dram__throughput`):
#   https://docs.nvidia.com/nsight-compute/ProfilingGuide/index.html
