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
# # Lab 276 - OOM while monitoring shows free memory
#
# A worker dies with `CUDA out of memory` while its dashboards say it is inside its budget and
# the card has memory left. You will reproduce the failure for real, read the evidence the
# allocator and the card give you (the OOM message, a memory snapshot, the card's processes),
# compute the numbers that decide which limit refused the request, fix that limit, and prove
# the fix in a fresh process. About 35 minutes; the code runs in under a minute.

# %%
from labsupport import device, session

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("276", seed=SEED)
_ = device.banner(
    gpu="real",
    stand_in="a caching-allocator simulator that follows PyTorch's CUDACachingAllocator rules "
    "and writes torch's snapshot format (labsupport.memory.simulator)",
)

# %% [markdown]
# ## 1. Incident
#
# The page below is what on-call received. `embed-worker-2` computes embeddings on an 80 GB
# H100 that it shares with an LLM server (`vllm serve`). The worker runs under a hard budget
# (`torch.cuda.set_per_process_memory_fraction`), so that it can never take the server's
# memory. The dashboards, scraped every 60 s, say the worker was inside its budget and the
# card had gigabytes to spare. Yet the worker's next tensor was refused.

# %%
from labsupport.scenarios import oom_despite_free_memory as scenario

v = scenario.variant(SEED)
print(scenario.page(v))

# %% [markdown]
# Two things changed in the hour before the crash. Which one matters, if either, is what you
# will find out from the evidence, not from the changelog.

# %% [markdown]
# ## 2. Reproduce
#
# The worker's batch is a trace of allocations. On a GPU it runs for real in a **fresh
# process**: the allocator reads its settings once per process, and an OOM experiment should
# never share a kernel with your notebook. The process caps itself with
# `torch.cuda.set_per_process_memory_fraction(budget / total)`, allocates `uint8` tensors of
# exactly the traced sizes, catches `torch.OutOfMemoryError` and then collects what on-call
# can collect: `torch.cuda.memory._snapshot()`, `memory_stats()`, `mem_get_info()` and the
# card's processes (NVML, as `nvidia-smi --query-compute-apps` shows them). The server's
# redeploy happens where it happened in production, just before the worker's request.
# Without a GPU the same trace runs through a stand-in: a simulator that follows the
# allocator's source rule by rule and returns the same kind of result and the same snapshot
# format (a GPU test replays traces through both and compares them). The banner above says
# which one you are running.

# %%
incident = scenario.run(v)  # BUG: the deployment as it ran at 03:12
print(incident.describe())
print()
print(scenario.oom_text(incident.oom_message))
print()
print(scenario.card_table(incident))

# %% [markdown]
# The allocator's memory at the moment of the failure, drawn from the snapshot: one bar per
# segment (one `cudaMalloc`, or one mapped range), blocks in address order, sizes in MiB;
# the request drawn on top.

# %%
from labsupport import plots
from labsupport.memory import snapshot

_ = plots.show(snapshot.plot_segments(incident.snapshot, request_bytes=v.request_bytes))

# %% [markdown]
# ## 3. Diagnose
#
# "Free" means four different things, and the dashboards mixed them up:
#
# 1. `torch.cuda.memory_allocated()`: bytes in blocks that tensors hold;
# 2. `torch.cuda.memory_reserved()`: bytes in segments the caching allocator took from the
#    driver. nvidia-smi and DCGM count all of it as **used**, whether tensors hold it or not;
# 3. `torch.cuda.mem_get_info()`: what the card has left, for every process on it;
# 4. the budget this process may use (`set_per_process_memory_fraction`): a cap on its
#    reserved memory, checked by its own allocator only.
#
# A new tensor needs **one contiguous free block** inside a segment this process already
# holds, or a new segment, which needs room under the budget **and** on the card. The
# snapshot lists every block of every segment:

# %%
for row in snapshot.segment_rows(incident.snapshot):
    blocks = ", ".join(f"{mib:.0f} {state}" for mib, state in row["blocks"])
    print(f"{row['kind']:>18} segment, {row['total_mib']:6.0f} MiB: {blocks}")
for key in (
    "reserved_bytes.all.current",
    "allocated_bytes.all.current",
    "inactive_split_bytes.all.current",
    "num_alloc_retries",
    "num_ooms",
):
    print(f"{key:36s} {incident.memory_stats[key]:>14,}")

# %% [markdown]
# Everything an exercise gets is in one dictionary of plain data, `evidence`:
# `oom_message`, `request_bytes`, `snapshot`, `memory_stats`, `card` (`total_bytes`,
# `free_bytes` from `mem_get_info`), `processes` (pid, name, used bytes) and `deployment`
# (the card's size, the worker's budget, environment and CUDA context, the server's
# `gpu_memory_utilization` and what the server needs at least).

# %%
evidence = scenario.evidence(v, incident)
print({k: evidence["deployment"][k] for k in sorted(evidence["deployment"])})

# %% [markdown]
# **Exercise 1.** Write three functions.
# - `largest_free_block_mib(snapshot)`: the largest contiguous free block, in MiB;
# - `reserved_unallocated_mib(snapshot)`: the memory reserved by PyTorch but not allocated to
#   tensors, in MiB;
# - `diagnose(evidence)`: which limit refused the request, and the numbers from this run
#   that show it.
#
# They are graded on several runs and snapshots measured during the check, including runs of
# incidents other than this one, not only on `evidence`. Stuck? `hint("276", 1, "diagnose")`
# shows the first of three hints (the transcript notes it).


# %% tags=["exercise"]
def largest_free_block_mib(snapshot: dict) -> float:
    """Largest contiguous free block of the snapshot, in MiB (0.0 when nothing is free).

    snapshot["segments"] is a list of segments; each has "blocks", in address order, and each
    block has "size" (bytes) and "state": "active_allocated" (a tensor holds it),
    "active_pending_free" (freed, waiting for another stream) or "inactive" (free). Free blocks
    next to each other in one segment form one hole; different segments are never contiguous.
    """
    # BEGIN SOLUTION
    largest = 0
    for seg in snapshot["segments"]:
        run = 0
        for block in seg["blocks"]:
            run = run + block["size"] if block["state"] == "inactive" else 0
            largest = max(largest, run)
    return largest / 2**20
    # END SOLUTION


def reserved_unallocated_mib(snapshot: dict) -> float:
    """Memory the caching allocator holds but no tensor uses, in MiB.

    This is the OOM message's "reserved by PyTorch but unallocated": the size of all segments
    ("total_size") minus what sits in "active_allocated" blocks.
    """
    # BEGIN SOLUTION
    reserved = sum(seg["total_size"] for seg in snapshot["segments"])
    allocated = sum(
        block["size"]
        for seg in snapshot["segments"]
        for block in seg["blocks"]
        if block["state"] == "active_allocated"
    )
    return (reserved - allocated) / 2**20
    # END SOLUTION


def diagnose(evidence: dict) -> dict:
    """Which limit refused the request, with the numbers from this run that show it.

    Return {"cause": "allocator" or "card", "largest_free_block_mib": ...,
    "reserved_unallocated_mib": ..., "budget_left_mib": ..., "card_free_mib": ...}:
    - "allocator": the process's own budget left no room for a new segment, while the memory
      it already reserved could not serve the request;
    - "card": the budget still had room, but the card had no memory left for a new segment.
    budget_left_mib is the worker's budget minus what it has reserved; card_free_mib is the
    card's free memory at the failure (evidence["card"], or the OOM message). All in MiB.
    """
    # BEGIN SOLUTION
    snap = evidence["snapshot"]
    request = evidence["request_bytes"] / 2**20
    reserved = sum(seg["total_size"] for seg in snap["segments"]) / 2**20
    budget_left = evidence["deployment"]["worker_budget_bytes"] / 2**20 - reserved
    card_free = evidence["card"]["free_bytes"] / 2**20
    cause = "card" if card_free < request <= budget_left else "allocator"
    return {
        "cause": cause,
        "largest_free_block_mib": largest_free_block_mib(snap),
        "reserved_unallocated_mib": reserved_unallocated_mib(snap),
        "budget_left_mib": budget_left,
        "card_free_mib": card_free,
    }
    # END SOLUTION


# %%
from labsupport import hint  # noqa: F401  (hint("276", 1, "diagnose"))

found = diagnose(evidence)
print(f"request:                  {v.request_bytes / 2**20:8.1f} MiB")
for key, value in found.items():
    print(f"{key:25s} {value if isinstance(value, str) else f'{value:8.1f} MiB'}")

# %%
from labsupport import check

check("276")

# %% [markdown] tags=["reveal"]
# Read the numbers together. Two incidents hide behind the same page.
#
# **"allocator": the caching allocator's holes (fragmentation).** The budget left is smaller
# than the request, so no new segment is allowed, while reserved-but-unallocated memory is
# larger than the request, but the largest free block is smaller: the free memory is
# **fragmented** into holes between live tensors. Before raising, the allocator released
# every cached segment that was **entirely** free and retried (`num_alloc_retries`). There
# was none: live tensors sit in every segment, and `cudaFree` can only return whole segments.
# The card's gigabytes of free memory do not help: the budget forbids using them.
#
# **"card": a neighbour's reservation.** The budget left is larger than the request, so the
# allocator asked the driver for a new segment, and `cudaMalloc` failed: the card had less
# free memory than the request. The OOM message says so (`of which ... is free`) and lists the
# process that holds it. The server was redeployed with a higher `gpu_memory_utilization`
# between two scrapes. A per-process memory fraction is a **cap**, not a **reservation**:
# nothing stopped the server from taking what the worker's budget promised.
#
# Torch's closing advice is the same in both cases, which is why you read the numbers first:

# %% tags=["reveal"]
print(incident.oom_message[incident.oom_message.find("If reserved") :])

# %% [markdown] tags=["reveal"]
# The classic advice, `torch.cuda.empty_cache()`, releases exactly the whole free segments the
# allocator already released by itself before raising; it can neither fill holes between live
# tensors nor take memory back from another process. Here it is, just before the request:

# %% tags=["reveal"]
emptied = scenario.run(v, empty_cache_before_request=True)
print(emptied.describe())

# %% [markdown]
# ## 4. Fix
#
# A fix changes what refused the request, and nothing else. The knobs of this card:
#
# - The worker's allocator settings, `PYTORCH_ALLOC_CONF` (`PYTORCH_CUDA_ALLOC_CONF` is its
#   alias; torch 2.8-2.11 warned that it was deprecated, 2.12 dropped the warning), read
#   **once per process**, so they go into the worker's environment before it starts:
#   - `expandable_segments:True`: one segment per pool that grows by mapping pages at its
#     end; under pressure the allocator unmaps the pages lying inside free blocks and maps
#     them again where the new tensor fits. Holes stop being stranded;
#   - `max_split_size_mb:N`: never split cached blocks of N MiB or more; limits the holes in
#     large blocks but needs a threshold tuned to the workload.
# - The server's `gpu_memory_utilization`: in current vLLM a per-instance fraction of the
#   card that the server fills (weights, then KV cache). Two tenants fit when the server's
#   share plus the worker's budget plus the worker's CUDA context is at most the card, and the
#   server's share still covers what it needs.
# - Not fixes: raising or removing the worker's budget, `PYTORCH_NO_CUDA_MEMORY_CACHING=1`
#   (no cache and no budget either), or starving the server below its needs. They move the
#   failure to the other tenant.
#
# **Exercise 2.** Return the card's new deployment for the run in `evidence`:
# `{"worker_env": {...}, "server_gpu_memory_utilization": u}`. It is graded on this incident
# and on others, each re-run in a fresh process. `hint("276", 1, "deployment")` if you want one.

# %% tags=["exercise"]
import math


def deployment(evidence: dict) -> dict:
    """The card's deployment after the fix: the worker's environment and the server's share.

    Return {"worker_env": {"VARIABLE": "key:value", ...}, "server_gpu_memory_utilization": u}.
    Change only what refused the request in this evidence; keep everything else as
    evidence["deployment"] has it.
    """
    # BEGIN SOLUTION
    dep = evidence["deployment"]
    if diagnose(evidence)["cause"] == "allocator":
        return {
            "worker_env": {"PYTORCH_ALLOC_CONF": "expandable_segments:True"},
            "server_gpu_memory_utilization": dep["server_gpu_memory_utilization"],
        }
    total = dep["card_total_bytes"]
    room = total - dep["worker_budget_bytes"] - dep["worker_context_bytes"]
    return {"worker_env": {}, "server_gpu_memory_utilization": math.floor(room / total * 100) / 100}
    # END SOLUTION


# %%
plan = deployment(evidence)
fixed = scenario.run(v, plan)  # a fresh process on a GPU
print("plan:", plan)
print(fixed.describe())
print(
    "allocator settings read back from the run:",
    {
        k: fixed.allocator_settings.get(k)
        for k in ("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments", "max_split_size")
    },
)
print(scenario.card_table(fixed))

# %% [markdown]
# Always read a setting back from the process that should have it, as above: the snapshot's
# `allocator_settings` say what the allocator really uses. Torch 2.9.1 silently ignored
# `expandable_segments` given under the new name `PYTORCH_ALLOC_CONF` (pytorch#183387; its
# reporter verified 2.11.0 honours it, karpathy/autoresearch#588). The simulator can replay
# that release:

# %%
from labsupport.memory.config import AllocatorConfig

for version in ("2.9.1", "2.11.0"):
    cfg = AllocatorConfig.from_env(
        {"PYTORCH_ALLOC_CONF": "expandable_segments:True"}, torch_version=version
    )
    print(f"torch {version}: expandable_segments in effect = {cfg.expandable_segments}")

# %%
check("276")

# %% [markdown]
# ## 5. Verify
#
# As deployed and fixed, side by side, from runs made in this notebook. First the segment
# maps at the moment of the request:

# %%
_ = plots.show(
    snapshot.plot_segment_maps(
        {"as deployed": incident.snapshot, "fixed": fixed.snapshot},
        request_bytes=v.request_bytes,
    )
)
for label, result in {
    "as deployed": incident,
    "empty_cache() first": emptied,
    "fixed": fixed,
}.items():
    print(f"{label:20s} {result.describe()}")

# %% [markdown]
# The headline: after the same batch, what is the largest tensor this worker can still
# allocate under its budget? Each arm stops before the request and bisects that size in its
# own fresh process.

# %%
from labsupport import headline

arms = {"as deployed": None, "fixed": plan}
fits = {label: scenario.run(v, p, probe=True) for label, p in arms.items()}
fits_mib = {label: result.largest_request_bytes / 2**20 for label, result in fits.items()}
_ = plots.show(
    plots.before_after(
        fits_mib, unit="MiB", title=f"largest request that fits (budget {v.budget_mib} MiB)"
    )
)
_ = headline.record(
    "276",
    metric="largest request that fits after the batch",
    before=fits_mib["as deployed"],
    after=fits_mib["fixed"],
    unit="MiB",
    higher_is_better=True,
    device=incident.device_name,
    backend=incident.backend,
    budget_mib=v.budget_mib,
    seed=SEED,
)

# %% [markdown]
# ## 6. Debrief
#
# **The interview question.** "The service suddenly OOMs, but GPU monitoring shows memory to
# spare. What is usually the cause? Fragmentation? PyTorch's cache not released?"
#
# **A model answer.** Monitoring and the allocator count different things, so first find
# which limit refused the request. nvidia-smi/DCGM see what each process *reserved* (plus its
# CUDA context), scraped every 15-60 s; the allocator needs one contiguous block, or a new
# segment that both the process's budget and the card can hold. Read the OOM message: the
# card's free memory, each process's memory, the budget (`allowed`), allocated and
# reserved-but-unallocated. Then `torch.cuda.memory._snapshot()` (or
# `_record_memory_history()` plus `_dump_snapshot()` and pytorch.org/memory_viz) for the
# largest free block, and `memory_stats()` for `inactive_split_bytes`, `num_alloc_retries`,
# `num_ooms`.
# - Budget reached, reserved-but-unallocated larger than the request, largest block smaller:
#   **fragmentation** inside the caching allocator. Fix first with
#   `PYTORCH_ALLOC_CONF=expandable_segments:True` in the process's environment, verified in
#   the snapshot's `allocator_settings`; then reduce the churn (fixed or bucketed shapes,
#   pre-allocated buffers, as vLLM does with its KV-cache pool).
# - Budget open, card free smaller than the request: **another process** took the card. A
#   memory fraction is a cap, not a reservation: size the tenants so they fit together
#   (the server's `gpu_memory_utilization`, the worker's budget and both contexts), or give
#   the worker a card, a MIG slice or an MPS memory limit of its own.
#
# **Where the classic answer is outdated or wrong.**
# - *"It is fragmentation"* - often, but not always: the same page, the same dashboards and
#   the same closing advice in the OOM message come with a full card too. Torch recommends
#   expandable segments in every OOM message, whatever refused the request.
# - *`max_split_size_mb:128` first* - outdated. Current PyTorch's OOM message recommends
#   `expandable_segments:True`, and so do NVIDIA's and stas00's guides. `max_split_size_mb`
#   can dodge one trace (it keeps big cached blocks whole), but its threshold is tuned to a
#   workload, and it protects only blocks above it; expandable segments need no tuning.
# - *Call `torch.cuda.empty_cache()`* - wrong for both causes: it returns only segments that
#   are entirely free, which the allocator already does by itself before raising an OOM; it
#   cannot touch holes inside segments that hold tensors, nor another process's memory, and
#   each call synchronises.
# - *"The largest free block"* read as the largest single `inactive` block: torch merges free
#   neighbours, but a block pending on another stream is not free yet, and the hole that
#   matters is the run of free neighbours inside one segment.
# - *`PYTORCH_CUDA_ALLOC_CONF`* - torch 2.8-2.11 called it deprecated in favour of
#   `PYTORCH_ALLOC_CONF`; 2.12 dropped that warning and keeps it as an alias, and torch 2.13's
#   own OOM message still names it. In 2.9.1 the new name was ignored for
#   `expandable_segments` (pytorch#183387): read the setting back from the snapshot.
# - vLLM pre-reserves `gpu_memory_utilization` of the card at start-up (current vLLM: a
#   per-instance share, `CacheConfig.gpu_memory_utilization`; older releases treated it as a
#   ceiling for all processes on the card, vLLM PR #9505) and refuses to start when the card
#   has less free memory than that share, so start order decides which tenant fails. "Used"
#   on the dashboard says nothing about the holes inside a process, and a redeploy between
#   two scrapes is invisible.
#
# **Follow-ups an interviewer asks.**
# 1. Why can't the allocator just compact memory? (Tensors hold raw device pointers.)
# 2. What does expandable segments cost? (Mapping calls on growth, a sync on unmap; CUDA IPC
#    of such tensors needs special handling; 2 MiB/20 MiB pages still round sizes up.)
# 3. Does `set_per_process_memory_fraction` isolate two processes? (It caps only PyTorch's
#    allocator, not the CUDA context, NCCL or cuBLAS workspaces, and reserves nothing - lab
#    281.)
# 4. How would you alert on this before the OOM? (`reserved - allocated` and
#    `inactive_split_bytes` per process; the card's free memory against each tenant's budget;
#    the largest free block from a snapshot.)
#
# **References.** PyTorch CUDA semantics, "Optimizing memory usage with PYTORCH_ALLOC_CONF":
# https://docs.pytorch.org/docs/stable/notes/cuda.html ·
# Understanding CUDA memory usage: https://docs.pytorch.org/docs/stable/torch_cuda_memory.html ·
# the allocator's source, c10/cuda/CUDACachingAllocator.cpp (the OOM message, Note [Expandable
# Segments]; the simulator's message is torch 2.13's, read from its libc10_cuda.so) ·
# c10/core/AllocatorConfig.cpp (PYTORCH_ALLOC_CONF read first) ·
# pytorch#183387: https://github.com/pytorch/pytorch/issues/183387 and its verification in
# https://github.com/karpathy/autoresearch/pull/588 · the deprecation warning's releases:
# https://github.com/PriorLabs/TabPFN/issues/608 and pytorch PR #167659 ·
# vLLM `gpu_memory_utilization`: https://docs.vllm.ai/en/latest/configuration/engine_args/ and
# https://github.com/vllm-project/vllm/pull/9505.

# %% tags=["reveal"]
for label, env in {
    "max_split_size_mb:128": {"PYTORCH_ALLOC_CONF": "max_split_size_mb:128"},
    "max_split_size_mb:1024": {"PYTORCH_ALLOC_CONF": "max_split_size_mb:1024"},
}.items():
    result = scenario.run(v, {"worker_env": env, "server_gpu_memory_utilization": v.server_after})
    made, freed = result.memory_stats["num_device_alloc"], result.memory_stats["num_device_free"]
    print(f"{label:24s} {result.outcome:4s} segments cudaMalloc'd: {made}, cudaFree'd: {freed}")
