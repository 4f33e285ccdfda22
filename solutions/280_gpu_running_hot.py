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
# # Lab 280 - GPU temperature and clock alerts
#
# One node of the serving pool has been slower than its peers all night, and no GPU alert
# paged: the one that watches the clocks was silenced weeks ago because it fired on every GPU,
# all the time. You will look at what a GPU's telemetry says at rest and at work, find which
# of the node's eight GPUs is slowed down and by what, write the Prometheus alert rules that
# page for that and nothing else, and prove them with the real `promtool` on series where the
# answer is known. About 35 minutes; the code runs in under a minute.

# %%
from labsupport import device, session
from labsupport.scenarios import gpu_running_hot as scenario

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("280", seed=SEED)
v = scenario.variant(SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="real",
    stand_in="the NVML samples recorded on an NVIDIA H100 80GB HBM3 (labsupport/data/"
    "nvml_trace_h100.csv) for the single card (the node's series below are built from them "
    "with or without a GPU)",
)

# %% [markdown]
# ## 1. Incident
#
# The page, as on-call received it:

# %%
print(scenario.page(v))

# %% [markdown]
# Two alerts exist and both are ignored. Before deciding who is right, the GPU or the people who
# silenced it, look at what a healthy card reports.

# %% [markdown]
# ## 2. Reproduce
#
# ### One card, at rest and at work
#
# NVML is the library under `nvidia-smi` and DCGM. With a GPU, this cell samples it every
# 0.1 s (`labsupport.telemetry.nvml`: temperature, SM clock, power, the *clocks event reasons*
# bitmask that NVML used to call *throttle reasons*, utilisation, the violation counters)
# while the card idles, runs a bf16 GEMM loop in a child process, and idles again. It only
# reads: the card does what its own management decides. Without a GPU you get the same three
# phases recorded on an H100 (the banner says which). The card's own limits come with it.

# %%
from labsupport import plots
from labsupport.scenarios.gpu_running_hot import live
from labsupport.scenarios.gpu_running_hot import plots as lab_plots

card_trace = live.observe(
    idle_s=6.0 if SCALE == "full" else 3.0, gemm_s=30.0 if SCALE == "full" else 12.0
)
card = card_trace.card
print(card_trace.source)
print(
    f"{card.name}: max operating {card.gpu_max_op_c} C, slowdown {card.slowdown_c} C, "
    f"shutdown {card.shutdown_c} C, power limit {card.power_limit_w:g} W, "
    f"max SM clock {card.max_sm_mhz} MHz"
)
_ = plots.show(lab_plots.trace_panels(card_trace, title=card.name))

# %% [markdown]
# What each phase reads, in its steady part (a kernel running, its first second dropped), and
# the masks as NVML returns them:

# %%
import numpy as np

print(f"{'phase':<11} {'temp C':>7} {'SM MHz':>7} {'power W':>8}  masks seen")
for name in card_trace.phase_names():
    part = card_trace.phase(name)
    steady = part.active() if name == "gemm" else part
    masks = ", ".join(f"0x{m:x}" for m in steady.seen("reasons"))
    print(
        f"{name:<11} {steady.median('temp_c'):7.0f} {steady.median('sm_mhz'):7.0f} "
        f"{steady.median('power_w'):8.0f}  {masks}"
    )

# %% [markdown]
# The team's two rules, as deployed:

# %%
from labsupport.scenarios.gpu_running_hot import alerts

print(alerts.NAIVE_RULES)

# %% [markdown]
# Run them on this card's samples with the real `promtool` (`promtool test rules` evaluates a
# rule file over input series exactly as Prometheus does; `labsupport.telemetry.promtool`
# reads back when an alert fired). The samples are scraped every second into the metrics
# dcgm-exporter exports (`labsupport.telemetry.dcgm`):

# %%
from labsupport.telemetry import promtool

print(promtool.version())
for phase, share in live.rules_on_trace(alerts.NAIVE_RULES, card_trace).items():
    print(f"{phase:<11} an alert fired in {share:4.0%} of the evaluations")

# %% [markdown]
# ### The node, tonight
#
# The node's eight GPUs for the last 45 minutes, as Prometheus scraped them every 15 s. These
# series are a **stand-in, built, not recorded**, and this is what is real in them: the
# clocks, power and masks of GPUs at work and at rest are drawn from the H100 recording above,
# scrape by scrape; the card's thresholds and power limit are the ones read on that card; the
# temperatures follow a model fitted to the recording's rise and fall. One GPU's trouble is
# **constructed** as NVIDIA documents its bits and clocks
# (`labsupport/scenarios/gpu_running_hot/node.py` says how), because producing it for real
# means heating or starving a card.

# %%
tonight = v.node()
evidence = tonight.evidence()
_ = plots.show(lab_plots.node_panels(tonight, title=f"{tonight.spec.hostname}, last 45 minutes"))
print(f"{'gpu':>3} {'max C':>6} {'SM MHz (median)':>16}  masks seen (hex)")
for gpu, g in evidence["gpus"].items():
    s = g["series"]
    masks = sorted({int(m) for m in s["DCGM_FI_DEV_CLOCKS_EVENT_REASONS"]})
    median_sm = np.median(s["DCGM_FI_DEV_SM_CLOCK"])
    print(
        f"{gpu:>3} {max(s['DCGM_FI_DEV_GPU_TEMP']):6.0f} {median_sm:16.0f}  "
        + ", ".join(f"0x{m:x}" for m in masks)
    )
print("limits:", evidence["gpus"]["0"]["limits"])

# %% [markdown]
# And the team's rules on the node, in promtool. A page is a stretch of evaluations in which an
# alert fires for a GPU:

# %%
naive = alerts.score(alerts.NAIVE_RULES, {"tonight": tonight})
for p in naive.pages:
    print(f"gpu {p.gpu} paged from minute {p.start_s / 60:4.1f} to {p.end_s / 60:4.1f}")

# %% [markdown]
# Before you read on: every GPU pages. Which masks does a GPU show at rest, and which at work?
# Which GPU's readings change tonight, how, and from when?

# %% [markdown]
# ## 3. Diagnose
#
# The mask is documented bit by bit: NVML's *ClocksEventReasons* page
# (https://docs.nvidia.com/deploy/nvml-api/group__nvmlClocksEventReasons.html), pynvml's
# `nvmlClocksEventReason*` constants, DCGM's `DCGM_CLOCKS_EVENT_REASON_*` masks. The same
# table, with NVIDIA's description of each bit, is `labsupport.telemetry.reasons.TABLE`.
#
# **Exercise 1 (graded).** `decode_reasons(mask)`: the names of the set bits.
#
# **Exercise 2 (graded).** `triage(evidence)`: which GPU is slowed down, by what, and the
# numbers from this node that show it. It is graded on this node and on nodes of other nights.
# Stuck? `hint("280", 1, "triage")` (up to 3 per exercise) gives a hint and notes it in your
# transcript.

# %% tags=["exercise"]
import statistics

from labsupport.telemetry.reasons import TABLE


def decode_reasons(mask: int) -> list[str]:
    """Names of the bits set in a clocks event reasons mask, lowest bit first.

    Use DCGM's names (the suffix of DCGM_CLOCKS_EVENT_REASON_*: 0x1 is "GPU_IDLE", 0x4 is
    "SW_POWER_CAP" ...). A set bit that NVIDIA does not document is named "UNKNOWN_0x<bit>",
    e.g. "UNKNOWN_0x200". A mask of 0 gives [].
    """
    # BEGIN SOLUTION
    mask = int(mask)
    names = [row.name for row in TABLE if mask & row.bit]
    bit = 0x200
    while bit <= mask:
        if mask & bit:
            names.append(f"UNKNOWN_0x{bit:x}")
        bit <<= 1
    return names
    # END SOLUTION


def triage(evidence: dict) -> dict:
    """The node's slowed-down GPU, what slowed it, and the numbers that show it.

    evidence: {"t_s": [...], "interval_s": 15, "gpus": {"0": {"limits": {...}, "series":
    {"DCGM_FI_DEV_CLOCKS_EVENT_REASONS": [...], "DCGM_FI_DEV_SM_CLOCK": [...],
    "DCGM_FI_DEV_GPU_TEMP": [...], ...}}, ...}}: one value per scrape.
    Return {"gpu": "3", "cause": "thermal" or "power", "problem_bits": [names of the bits that
    held that GPU's clocks down], "normal_bits": [names of the other bits seen on the node],
    "sm_clock_mhz_before": median SM clock of that GPU before its trouble,
    "sm_clock_mhz_during": median SM clock over the scrapes of its trouble,
    "max_temp_c": its highest temperature}.
    """
    # BEGIN SOLUTION
    problem = {"HW_SLOWDOWN", "SW_THERMAL", "HW_THERMAL", "HW_POWER_BRAKE"}

    def troubled(masks: list) -> list[int]:
        # scrapes with a problem bit, in runs of two or more: one scrape at a clock change is
        # not an episode
        bad = [bool(problem & set(decode_reasons(m))) for m in masks]
        return [
            i
            for i, on in enumerate(bad)
            if on and ((i > 0 and bad[i - 1]) or (i + 1 < len(bad) and bad[i + 1]))
        ]

    scores = {
        gpu: len(troubled(g["series"]["DCGM_FI_DEV_CLOCKS_EVENT_REASONS"]))
        for gpu, g in evidence["gpus"].items()
    }
    gpu = max(scores, key=lambda g: (scores[g], -int(g)))
    series = evidence["gpus"][gpu]["series"]
    masks = series["DCGM_FI_DEV_CLOCKS_EVENT_REASONS"]
    bad = troubled(masks)
    seen_problem = {n for i in bad for n in decode_reasons(masks[i]) if n in problem}
    seen_normal = {
        n
        for g in evidence["gpus"].values()
        for m in g["series"]["DCGM_FI_DEV_CLOCKS_EVENT_REASONS"]
        for n in decode_reasons(m)
        if n not in problem
    }
    clocks = series["DCGM_FI_DEV_SM_CLOCK"]
    return {
        "gpu": gpu,
        "cause": "thermal" if seen_problem & {"SW_THERMAL", "HW_THERMAL"} else "power",
        "problem_bits": sorted(seen_problem),
        "normal_bits": sorted(seen_normal),
        "sm_clock_mhz_before": statistics.median(clocks[: bad[0]]),
        "sm_clock_mhz_during": statistics.median(clocks[i] for i in bad),
        "max_temp_c": max(series["DCGM_FI_DEV_GPU_TEMP"]),
    }
    # END SOLUTION


# %%
from labsupport import hint  # noqa: F401  (hint("280", 1, "triage"))

print({hex(m): decode_reasons(m) for m in (0x1, 0x4, 0x24)})
found = triage(evidence)
for key, value in found.items():
    print(f"{key:<20} {value}")

# %%
from labsupport import check

check("280")

# %% [markdown] tags=["reveal"]
# **What the bits say.** NVIDIA's description of every bit this node showed:

# %% tags=["reveal"]
from labsupport.telemetry.reasons import BY_NAME

for name in found["normal_bits"] + found["problem_bits"]:
    row = BY_NAME[name]
    print(f"0x{row.bit:<3x} {name:<15} {row.doc}\n")

# %% [markdown] tags=["reveal"]
# - **GPU_IDLE (0x1)** is set whenever nothing runs and the clocks drop to idle: every idle GPU
#   reports it, all the time. NVIDIA even warns the limiter may be removed in a later release.
# - **SW_POWER_CAP (0x4)** is the card's power management doing its job: a GEMM loop draws the
#   full 700 W, and the driver picks the highest clocks that stay under the limit (~1350 MHz of
#   1980 on the recorded H100, at 698 W). Every GPU that works hard shows it. It is a capacity
#   fact (you are compute-bound at the power limit), not a fault.
# - **SW_THERMAL (0x20)** means the clocks are trimmed to keep the GPU below its *max operating*
#   temperature (87 C on this H100; memory has its own); **HW_THERMAL (0x40)** and
#   **HW_SLOWDOWN (0x8)** mean the hardware cut the clocks by 2x or more because the GPU reached
#   its *slowdown* temperature (89 C). That is a cooling failure: a fan, a blocked inlet, the
#   row's air.
# - **HW_POWER_BRAKE (0x80)** with HW_SLOWDOWN means the *system* asserted the external power
#   brake (a power supply, the rack's power): clocks halved at a normal temperature.
#   **HW_SLOWDOWN alone**, sustained at a normal temperature, is the fast-trigger power
#   protection or the same power delivery problem. Neither shows in a temperature alert.
# - A **single scrape** of HW_SLOWDOWN during a clock change is documented noise ("may be also
#   reported during PState or clock change"): page on what persists.
#
# So `DCGM_FI_DEV_CLOCKS_EVENT_REASONS > 0` fires on every idle GPU and every busy one, people
# silence it, and the real event drowns. `DCGM_FI_DEV_GPU_TEMP > 82` fires on a healthy card in
# a warm slot (still 4-5 C below its own max operating temperature) and misses every power
# event. Tonight's slowed GPU, and what its bits and clocks did:

# %% tags=["reveal"]
print(
    f"gpu {found['gpu']}: {found['cause']}, bits {found['problem_bits']}, SM clock "
    f"{found['sm_clock_mhz_before']:.0f} -> {found['sm_clock_mhz_during']:.0f} MHz, "
    f"max {found['max_temp_c']:.0f} C (max operating {card.gpu_max_op_c} C)"
)

# %% [markdown]
# ## 4. Fix
#
# **Exercise 3 (graded).** `alert_rules()`: the Prometheus rule file (YAML) for the pool, over
# the metrics dcgm-exporter exports (`DCGM_FI_DEV_CLOCKS_EVENT_REASONS`, `DCGM_FI_DEV_GPU_TEMP`,
# `DCGM_FI_DEV_SM_CLOCK`, `DCGM_FI_DEV_POWER_USAGE`, the violation counters
# `DCGM_FI_DEV_THERMAL_VIOLATION` / `..._POWER_VIOLATION` in ns, and each card's own limits
# `DCGM_FI_DEV_SLOWDOWN_TEMP`, `DCGM_FI_DEV_SHUTDOWN_TEMP`, `DCGM_FI_DEV_GPU_MAX_OP_TEMP`,
# `DCGM_FI_DEV_POWER_MGMT_LIMIT`; labels `gpu`, `UUID`, `modelName`, `hostname`, ...). It must
# page for every GPU whose clocks are held down by heat or by the hardware, within 3 minutes,
# and never for a healthy GPU; every alert must keep the `gpu` label. The check runs it in
# promtool over nodes with every kind of event and over healthy ones (a card type whose own
# thresholds are higher than the H100's among them). `hint("280", 1, "alert_rules")` if you
# want one.


# %% tags=["exercise"]
def alert_rules() -> str:
    """The pool's GPU alert rules, as a Prometheus rule file (YAML text).

    PromQL has no bitwise operators: test a bit with arithmetic on the mask. Compare
    temperatures with the card's own threshold metrics, never a fixed number.
    """
    # BEGIN SOLUTION
    return """\
groups:
- name: gpu-health
  rules:
  # 0x8 HW_SLOWDOWN, 0x20 SW_THERMAL, 0x40 HW_THERMAL, 0x80 HW_POWER_BRAKE: the clocks are held
  # down by heat or by the hardware. GPU_IDLE (0x1) and SW_POWER_CAP (0x4) are normal.
  - alert: GPUClocksHeldDown
    expr: |
      (floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / 8) % 2 == 1)
      or (floor(DCGM_FI_DEV_CLOCKS_EVENT_REASONS / 32) % 8 > 0)
    for: 1m
    labels: {severity: page}
    annotations:
      summary: "GPU {{ $labels.gpu }} on {{ $labels.hostname }}: clocks held down"
  # The card's own limit, not a fixed number: at max operating temperature the clocks go down.
  - alert: GPUAtMaxOperatingTemperature
    expr: DCGM_FI_DEV_GPU_TEMP >= DCGM_FI_DEV_GPU_MAX_OP_TEMP
    for: 1m
    labels: {severity: page}
"""
    # END SOLUTION


# %%
rules = alert_rules()
mine = alerts.score(rules, {"tonight": tonight})
print("the team's rules:", naive.summary())
print("your rules:      ", mine.summary())
_ = plots.show(
    lab_plots.pages(tonight, {"team's rules": naive, "your rules": mine}, title="pages tonight")
)

# %%
check("280")

# %% [markdown]
# ## 5. Verify
#
# Both rule files, run in promtool on tonight's node in this notebook. The headline is the
# share of pages that were real: a rule that pages for nothing but real slowdowns gets read.

# %%
from labsupport import headline

_ = plots.show(
    plots.before_after(
        {"team's rules": 100 * naive.precision, "your rules": 100 * mine.precision},
        unit="%",
        title="pages that were a real slowdown, tonight's node",
    )
)
_ = headline.record(
    "280",
    metric="share of pages that were a real slowdown",
    before=100 * naive.precision,
    after=100 * mine.precision,
    unit="%",
    higher_is_better=True,
    seed=SEED,
    before_pages=naive.pages_total,
    after_pages=mine.pages_total,
    after_missed=len(mine.missed),
    slowed_gpu=found["gpu"],
    cause=found["cause"],
    single_card_source="live" if card_trace.source.startswith("sampled live") else "recorded",
    device=device.device_name(),
    promtool=promtool.version(),
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** When a GPU overheats and slows down, does your monitoring page you
# at once? Which Prometheus metric do you alert on?
#
# **Model answer.** dcgm-exporter, and not the temperature alone. The field that says *why*
# the clocks are low is the clocks event reasons bitmask, `DCGM_FI_DEV_CLOCKS_EVENT_REASONS`
# (DCGM field 112; NVML's `nvmlDeviceGetCurrentClocksEventReasons`, both formerly "throttle
# reasons"). I page on the bits that mean the clocks are held down for a reason a human must
# fix: SW_THERMAL 0x20 and HW_THERMAL 0x40 (cooling), HW_SLOWDOWN 0x8 and HW_POWER_BRAKE 0x80
# (the hardware's protection, often power delivery), sustained for a minute or so, with the
# `gpu` and `hostname` labels so the page names the card. PromQL has no bitwise AND, so a bit
# is tested as `floor(x / 8) % 2 == 1`. I never page on GPU_IDLE 0x1 or SW_POWER_CAP 0x4: an
# idle GPU and a GPU at its power limit are healthy. Temperatures I compare with each card's
# own thresholds (`DCGM_FI_DEV_GPU_MAX_OP_TEMP`, `DCGM_FI_DEV_SLOWDOWN_TEMP`, from NVML's
# temperature thresholds), and I also watch `rate(DCGM_FI_DEV_THERMAL_VIOLATION[5m]) > 0`:
# nanoseconds of thermal clock reduction, which catches short episodes between scrapes.
#
# **Where the classic answer is wrong.** "Alert when throttle reasons > 0, or temperature >
# 82 C":
#
# - **`> 0` fires on every GPU.** Bit 0x1 is GPU_IDLE and bit 0x4 is SW_POWER_CAP: the recorded
#   H100 shows 0x1 at rest and 0x4 for its whole GEMM loop (698 of 700 W, SM at ~1350 MHz).
#   Such an alert is silenced within weeks, and then the real event goes unseen, as tonight.
# - **A fixed 82 C is the wrong number.** Thresholds are per SKU and per board (this H100:
#   max operating 87 C, slowdown 89 C, shutdown 95 C; another H100 board reports shutdown 92 C):
#   read them (`nvidia-smi -q -d TEMPERATURE`, NVML, or the DCGM fields) and compare with those.
#   A healthy card in a warm slot at 83 C is not an incident.
# - **Temperature misses half the events.** A power brake or fast-trigger slowdown halves the
#   clocks at a normal temperature; only the bits show it.
# - **The names changed.** NVML renamed throttle reasons to clocks event reasons (the old names
#   are deprecated aliases), DCGM's field is now `DCGM_FI_DEV_CLOCKS_EVENT_REASONS`, and recent
#   DCGM adds per-reason counters (`DCGM_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN_NS`, ...).
#   dcgm-exporter's default counters CSV exports neither the mask nor the violation counters
#   (commented out): add them. It renamed its `Hostname` label to `hostname` in May 2026, which
#   silently breaks rules and dashboards that match on it.
#
# **Follow-up questions an interviewer asks.**
#
# - The alert should fire before clocks drop. What do you watch? (Temperature against
#   `DCGM_FI_DEV_GPU_MAX_OP_TEMP` with a margin as a *ticket*, not a page; the trend of the
#   node's temperatures; memory temperature against `DCGM_FI_DEV_MEM_MAX_OP_TEMP`, since HBM can
#   set SW_THERMAL while the GPU core looks cool.)
# - dcgm-exporter samples every 30 s by default. What do you miss? (Episodes between samples:
#   use the violation counters with `rate()`/`increase()`, or dcgm-exporter's
#   `DCGM_EXP_CLOCK_EVENTS_COUNT{clock_event="hw_thermal"}`, counted over
#   `DCGM_EXPORTER_CLOCK_EVENTS_COUNT_WINDOW_SIZE`.)
# - A GPU shows SYNC_BOOST (0x10). Is it throttled? (It is held to the slowest GPU of its sync
#   boost group: look at the other GPUs' reasons.)
# - How do you test alert rules before they reach production? (`promtool test rules` with
#   input series and expected alerts, in CI, as this lab's checks do.)
# - What do you do when the page comes? (Thermal: the card's fans, the node's airflow, the
#   row; drain the node if it persists. Power brake: the node's power supplies and the rack;
#   `nvidia-smi -q -d PERFORMANCE` on the node confirms the reasons, `dmesg` for Xid errors.)
#
# **References.**
#
# - NVML clocks event reasons: https://docs.nvidia.com/deploy/nvml-api/group__nvmlClocksEventReasons.html
# - DCGM field identifiers and masks (`dcgmlib/dcgm_fields.h`: `DCGM_FI_DEV_CLOCKS_EVENT_REASONS`
#   112 and its deprecated alias, `DCGM_CLOCKS_EVENT_REASON_*`, the violation counters in ns,
#   `DCGM_FI_DEV_SLOWDOWN_TEMP` 158, `DCGM_FI_DEV_SHUTDOWN_TEMP` 159):
#   https://github.com/NVIDIA/DCGM and https://docs.nvidia.com/datacenter/dcgm/latest/reference/field-identifiers.html
# - dcgm-exporter's counters (`etc/default-counters.csv`), its clock-events collector
#   (`internal/pkg/collector/clock_events_collector.go`) and the `hostname` label rename (#655):
#   https://github.com/NVIDIA/dcgm-exporter
# - NVML temperature thresholds (`nvmlDeviceGetTemperatureThreshold`,
#   `NVML_TEMPERATURE_THRESHOLD_*`): https://docs.nvidia.com/deploy/nvml-api/group__nvmlDeviceQueries.html
# - Prometheus, unit testing rules with promtool:
#   https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/
# - Prometheus operators (no bitwise operators; `%`, `floor`):
#   https://prometheus.io/docs/prometheus/latest/querying/operators/
