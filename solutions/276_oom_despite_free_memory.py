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
# A worker dies with `CUDA out of memory` while every dashboard says the GPU is nearly empty.
# You will reproduce the failure for real, read the allocator's own evidence (a memory
# snapshot), compute the two numbers that explain it, fix it with one environment variable,
# and prove the fix in a fresh process. About 20 minutes; the code runs in under a minute.

# %%
from labsupport import device

_ = device.banner(
    gpu="real",
    stand_in="a caching-allocator simulator that follows PyTorch's CUDACachingAllocator rules "
    "and writes torch's snapshot format (labsupport.memory.simulator)",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV3 - embed-worker-2 crash-looping** (03:12 UTC)
# >
# > `torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 200.00 MiB. GPU 0 has a total
# > capacity of 79.19 GiB of which 77.69 GiB is free. Including non-PyTorch memory, this process
# > has 1.50 GiB memory in use. 1.07 GiB allowed; Of the allocated memory 500.00 MiB is
# > allocated by PyTorch, and 500.00 MiB is reserved by PyTorch but unallocated. ...`
# >
# > Dashboards at the time of the crash:
# >
# > | panel | value |
# > |---|---|
# > | GPU memory used (DCGM `DCGM_FI_DEV_FB_USED`) | 1.5 GiB of 79.2 GiB: 2% |
# > | `nvidia-smi --query-compute-apps=pid,used_memory` | embed-worker-2: 1536 MiB |
# > | worker's budget (`set_per_process_memory_fraction`) | 1100 MiB |
# > | worker's `torch.cuda.memory_reserved()` (its /metrics) | 1000 MiB |
# > | worker's `torch.cuda.memory_allocated()` | 500 MiB |
# >
# > What changed: yesterday's release batches embeddings differently: one 1000 MiB scratch
# > buffer at start-up, then ten 100 MiB buffers, half of them released early.
#
# The worker shares an H100 with an LLM server, so it runs under a hard budget of 1100 MiB.
# It holds 500 MiB of tensors and asks for 200 MiB more: 700 MiB, well inside 1100. The GPU
# has 77 GiB free. Why does the allocation fail, and what do you change?

# %% [markdown]
# ## 2. Reproduce
#
# The workload is a trace of allocations (`labsupport.memory.workload`). On a GPU it runs for
# real in a **fresh process**: the allocator reads its settings once per process, and an OOM
# experiment should never share a kernel with your notebook. The process caps itself with
# `torch.cuda.set_per_process_memory_fraction(1100 MiB / total)`, allocates `uint8` tensors of
# exactly these sizes, catches `torch.OutOfMemoryError` and takes
# `torch.cuda.memory._snapshot()` at that moment. Without a GPU the same trace runs through a
# stand-in: a simulator that follows the allocator's source rule by rule and returns the same
# kind of result and the same snapshot format (a GPU test replays traces through both and
# compares them). The banner above says which one you are running.

# %%
from labsupport import plots
from labsupport.memory import snapshot, workload

MiB = 2**20
trace = workload.fragmentation_trace()
for index, op in enumerate(trace):
    print(f"{index:2d}  {op}")

# %%
default = workload.run_trace(trace)  # BUG: default allocator settings under a 1100 MiB cap
print(default.describe())
print()
print(default.oom_message)

# %% [markdown]
# The request failed although 500 MiB sit reserved and unused. Here is the allocator's memory,
# drawn from the snapshot: one bar per segment (a `cudaMalloc`), blocks in address order.

# %%
_ = plots.show(snapshot.plot_segments(default.snapshot, request_bytes=200 * MiB))

# %% [markdown]
# ## 3. Diagnose
#
# "Free" means four different things, and the dashboards mixed them up:
#
# 1. `torch.cuda.memory_allocated()`: bytes in blocks that tensors hold (500 MiB);
# 2. `torch.cuda.memory_reserved()`: bytes in segments the caching allocator took from the
#    driver (1000 MiB). nvidia-smi and DCGM count all of it as **used**;
# 3. `torch.cuda.mem_get_info()`: what the driver has left for everyone (78 GiB here);
# 4. other processes' memory - and the budget this process may use (1100 MiB).
#
# A new tensor needs **one contiguous free block** inside a segment, or a new segment that
# still fits under the budget. The snapshot shows every block of every segment:

# %%
seg = default.snapshot["segments"][0]
print(
    f"segment at {seg['address']:#x}: {seg['segment_type']}, total {seg['total_size'] / MiB:.0f} "
    f"MiB, allocated {seg['allocated_size'] / MiB:.0f} MiB"
)
for block in seg["blocks"]:
    print(f"  {block['size'] / MiB:7.1f} MiB  {block['state']}")
stats = default.memory_stats
for key in (
    "reserved_bytes.all.current",
    "allocated_bytes.all.current",
    "inactive_split_bytes.all.current",
    "num_alloc_retries",
    "num_ooms",
):
    print(f"{key:36s} {stats[key]:>12,}")

# %% [markdown]
# **Exercise 1.** Write two functions that read a snapshot (from `torch.cuda.memory._snapshot()`
# or the simulator: same format) and return, in MiB:
# - `largest_free_block_mib`: the largest contiguous free block;
# - `reserved_unallocated_mib`: the memory reserved by PyTorch but not allocated to tensors.
#
# They are graded on several snapshots measured during the check, not only this one.


# %% tags=["exercise"]
def largest_free_block_mib(snapshot: dict) -> float:
    """Largest contiguous free block of the snapshot, in MiB (0.0 when nothing is free).

    snapshot["segments"] is a list of segments; each has "blocks", in address order, and each
    block has "size" (bytes) and "state": "active_allocated" (a tensor holds it),
    "active_pending_free" (freed, waiting for another stream) or "inactive" (free). Neighbouring
    free blocks of one segment form one hole; different segments are never contiguous.
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


# %%
print(f"largest free block:          {largest_free_block_mib(default.snapshot):7.1f} MiB")
print(f"reserved but unallocated:    {reserved_unallocated_mib(default.snapshot):7.1f} MiB")
said = snapshot.parse_oom_message(default.oom_message)
print(f"the OOM message said:        {said.reserved_unallocated_bytes / MiB:7.1f} MiB")

# %%
from labsupport import check

check("276")

# %% [markdown]
# Read the numbers together:
#
# - 500 MiB is reserved but unallocated, yet the largest free block is 100 MiB: the free memory
#   is **fragmented** into five 100 MiB holes between live tensors;
# - a new segment would need 1000 + 200 = 1200 MiB of reserved memory, over the 1100 MiB cap;
# - before raising, the allocator released every cached segment that was **entirely** free and
#   retried (`num_alloc_retries` = 1). There was none: five tensors still live in the one
#   segment, and `cudaFree` can only return whole segments.
#
# So the classic advice, `torch.cuda.empty_cache()`, cannot help: it releases exactly those
# whole free segments, which the allocator already tried. Here it is before the request:

# %%
emptied = workload.run_trace(workload.fragmentation_trace(empty_cache_before_request=True))
print(emptied.describe())

# %% [markdown]
# ## 4. Fix
#
# The allocator's behaviour is set by `PYTORCH_ALLOC_CONF` (the old name
# `PYTORCH_CUDA_ALLOC_CONF` still works and warns), read **once per process**: the worker needs
# it in its environment before it starts. The candidates:
#
# - `expandable_segments:True` - one segment per pool that grows by mapping pages at its end;
#   under pressure the allocator unmaps the pages lying inside free blocks and maps them again
#   where the new tensor fits. Holes stop being stranded.
# - `max_split_size_mb:N` - never split cached blocks of N MiB or more; limits fragmentation
#   of large blocks but needs a threshold tuned to the workload.
# - raising the budget, or `PYTORCH_NO_CUDA_MEMORY_CACHING=1` (no cache, no budget either) -
#   these hide the problem and break the neighbour's isolation; not fixes.
#
# **Exercise 2.** Return the environment for the fresh worker process.


# %% tags=["exercise"]
def allocator_env() -> dict[str, str]:
    """Environment variables for a fresh worker process, so the fragmenting workload survives
    under the same memory budget.

    Use the caching-allocator setting that current PyTorch's own OOM message recommends,
    under the variable name current PyTorch reads first. Return {"VARIABLE": "key:value"}.
    """
    # BEGIN SOLUTION
    return {"PYTORCH_ALLOC_CONF": "expandable_segments:True"}
    # END SOLUTION


# %%
fixed = workload.run_trace(trace, alloc_env=allocator_env())  # a fresh process on a GPU
print(fixed.describe())
print(
    "allocator settings read back from the run:",
    {
        k: fixed.allocator_settings.get(k)
        for k in ("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments", "max_split_size")
    },
)
print("torch warnings about the variable:", fixed.warnings or "none")

# %% [markdown]
# Always read the setting back from the process that should have it, as above: the snapshot's
# `allocator_settings` says what the allocator really uses. Torch 2.9.1 silently ignored
# `expandable_segments` given under the new name `PYTORCH_ALLOC_CONF` (pytorch#183387, fixed
# by 2.11); the simulator can replay that release:

# %%
from labsupport.memory.config import AllocatorConfig

for version in ("2.9.1", "2.11.0"):
    cfg = AllocatorConfig.from_env(allocator_env(), torch_version=version)
    print(f"torch {version}: expandable_segments in effect = {cfg.expandable_segments}")

# %%
check("276")

# %% [markdown]
# ## 5. Verify
#
# Default and fixed, side by side, from runs made in this notebook. First the segment maps at
# the moment of the 200 MiB request: the fixed run unmapped the holes and grew its segment.

# %%
plots.show(
    snapshot.plot_segment_maps(
        {"default": default.snapshot, "expandable_segments:True": fixed.snapshot},
        request_bytes=200 * MiB,
    )
)
for label, run in {
    "default": default,
    "empty_cache() first": emptied,
    "expandable_segments": fixed,
}.items():
    print(f"{label:22s} {run.describe()}")

# %% [markdown]
# The headline: after the same fragmentation, what is the largest tensor this worker can still
# allocate under its 1100 MiB budget? Each arm bisects that size in its own fresh process.

# %%
from labsupport import headline

probe = workload.fragmentation_trace(request_mib=0)  # the trace up to, not including, the request
arms = {"default": {}, "expandable_segments": allocator_env()}
fits = {
    label: workload.run_trace(probe, alloc_env=env, probe_largest_request=True)
    for label, env in arms.items()
}
fits_mib = {label: run.largest_request_bytes / MiB for label, run in fits.items()}
plots.show(
    plots.before_after(
        fits_mib, unit="MiB", title="largest request that fits after fragmentation (cap 1100 MiB)"
    )
)
_ = headline.record(
    "276",
    metric="largest request that fits after fragmentation",
    before=fits_mib["default"],
    after=fits_mib["expandable_segments"],
    unit="MiB",
    higher_is_better=True,
    device=default.device_name,
    backend=default.backend,
    cap_mib=1100,
    stranded_default_mib=default.reserved_unallocated_bytes / MiB,
)

# %% [markdown]
# ## 6. Debrief
#
# **The interview question.** "The service suddenly OOMs, but GPU monitoring shows memory to
# spare. What is usually the cause? Fragmentation? PyTorch's cache not released?"
#
# **A model answer.** Monitoring and the allocator count different things. nvidia-smi/DCGM see
# what the process *reserved* (plus its CUDA context), and a per-process budget or a
# neighbouring process can make "free on the GPU" irrelevant. Inside the process, PyTorch's
# caching allocator keeps freed blocks in its segments for reuse; a request needs one
# contiguous block, so when live tensors sit between the free pieces, a request can fail with
# plenty of memory "reserved but unallocated" - the OOM message prints that number. To confirm:
# read the message, then `torch.cuda.memory._snapshot()` (or `_record_memory_history()` plus
# `_dump_snapshot()` and pytorch.org/memory_viz) for the largest free block, and
# `memory_stats()` for `inactive_split_bytes`, `num_alloc_retries`, `num_ooms`. Fix first with
# `PYTORCH_ALLOC_CONF=expandable_segments:True` in the process environment and verify it in
# the snapshot's `allocator_settings`; then reduce the churn itself (fixed or bucketed shapes,
# pre-allocated buffers, as vLLM does with its KV-cache pool).
#
# **Where the classic answer is outdated or wrong.**
# - *`max_split_size_mb:128` first* - outdated. Current PyTorch's OOM message recommends
#   `expandable_segments:True`, and so do NVIDIA's and stas00's guides. To be fair, in the
#   simulator `max_split_size_mb:128` also cures this lab's trace (run the cell below): the
#   1000 MiB cached block is "oversize", so the 100 MiB tensors get segments of their own,
#   and freeing half of them frees whole segments. `max_split_size_mb:1024` does not cure it,
#   and the threshold only protects blocks above it; expandable segments need no tuning.
# - *Call `torch.cuda.empty_cache()`* - wrong for this failure: it returns only segments that
#   are entirely free, which the allocator already does by itself before raising an OOM. It
#   cannot touch holes inside segments that still hold tensors, and each call synchronises.
# - *`PYTORCH_CUDA_ALLOC_CONF`* - now the deprecated alias of `PYTORCH_ALLOC_CONF`; and in
#   torch 2.9.1 the new name was ignored for `expandable_segments` (pytorch#183387). Read the
#   setting back from `torch.cuda.memory._snapshot()["allocator_settings"]`.
# - Monitoring that scrapes every 15-60 s also misses sub-second peaks (a long prefill), and
#   vLLM pre-reserves `gpu_memory_utilization` of the card at start-up, so "used" on the
#   dashboard says nothing about fragmentation inside it.
#
# **Follow-ups an interviewer asks.**
# 1. Why can't the allocator just compact memory? (Tensors hold raw device pointers.)
# 2. What does expandable segments cost? (Mapping calls on growth, sync on unmap; CUDA IPC of
#    such tensors needed special handling; pages of 2 MiB/20 MiB still round sizes up.)
# 3. Does `set_per_process_memory_fraction` isolate two processes? (It caps only PyTorch's
#    allocator, not the CUDA context, NCCL or cuBLAS workspaces - lab 281.)
# 4. How would you alert on this before the OOM? (`reserved - allocated` and
#    `inactive_split_bytes` exported per process, the largest free block from a snapshot.)
#
# **References.** PyTorch CUDA semantics, "Optimizing memory usage with PYTORCH_ALLOC_CONF":
# https://docs.pytorch.org/docs/stable/notes/cuda.html ·
# Understanding CUDA memory usage: https://docs.pytorch.org/docs/stable/torch_cuda_memory.html ·
# pytorch#183387: https://github.com/pytorch/pytorch/issues/183387 · the allocator's source,
# c10/cuda/CUDACachingAllocator.cpp (Note [Expandable Segments]).

# %%
for label, env in {
    "max_split_size_mb:128": {"PYTORCH_ALLOC_CONF": "max_split_size_mb:128"},
    "max_split_size_mb:1024": {"PYTORCH_ALLOC_CONF": "max_split_size_mb:1024"},
}.items():
    run = workload.run_trace(trace, alloc_env=env)
    made, freed = run.memory_stats["num_device_alloc"], run.memory_stats["num_device_free"]
    print(f"{label:24s} {run.outcome:4s} segments cudaMalloc'd: {made}, cudaFree'd: {freed}")
