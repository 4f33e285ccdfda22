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
# # Lab 293 - Cold start takes minutes
#
# New replicas of a model server take many minutes to become ready, while a restart on the
# same node is quicker, and the team wants to bake the weights into the container image. You
# will generate a real checkpoint, load it the way production does - cold, with the page cache
# emptied as on a new node, and warm - read what the kernel counted, find where the start's
# time and bytes go, then pick and write the loader that fixes it and prove it by measurement:
# cold, in one run, same tensors. About 35 minutes; the code runs in about 2 minutes.

# %%
from labsupport import device, session
from labsupport.scenarios import slow_cold_start as scenario

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("293", seed=SEED)
variant = scenario.variant(SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="optional",
    stand_in="the checkpoint lives on this machine's disk (no network volume), a few hundred "
    "MB instead of hundreds of GB, and the weights go to the CPU: a load ends when every "
    "page of every tensor has been read",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV3 - llm-serving: scale-out too slow, p99 TTFT 9 s at the morning peak**
# > (08:05 UTC)
# >
# > | panel | value |
# > |---|---|
# > | new pods on new nodes, created to Ready | 6-9 min |
# > | the same pod restarted on its node | about 2 min |
# > | `kubectl logs` of a new pod | `loading /models/llm/train.pt` ... `weights loaded in 412.3 s` |
# > | the model volume (PVC) | healthy, no throttling alerts |
# >
# > Proposal in the incident channel: "bake the weights into the image, then they are local
# > and fast", or "move the PVC to a faster storage class". What changed: nothing in serving;
# > the model grew last month.
#
# The server's loader, unchanged for a year:
#
# ```python
# state = torch.load("/models/llm/train.pt", map_location="cpu", weights_only=False)
# weights = {k: v.to(torch.bfloat16).to(device) for k, v in state["model"].items()}
# ```
#
# Faster storage, or something else? Measure before you buy.

# %% [markdown]
# ## 2. Reproduce
#
# The model directory as the training team's pipeline leaves it, generated here
# (`labsupport.scenarios.slow_cold_start.checkpoint`, seeded): `train.pt`, what the training
# job saves with `torch.save`, and `model.safetensors`, which its publish step writes beside it.

# %%
from labsupport import progress
from labsupport.scenarios.slow_cold_start import checkpoint

shape = variant.shape(SCALE)
with progress.timed(4.0 if SCALE == "full" else 1.5, "writing the checkpoint"):
    ckpt = checkpoint.make(shape, variant.extras, SEED)
for file in ckpt.files():
    print(f"{file.name:<20} {file.stat().st_size / 2**20:8.1f} MiB")
print(
    f"the server runs {ckpt.params / 1e6:.1f} M parameters in bf16: "
    f"{ckpt.needed_bytes / 2**20:.1f} MiB"
)

# %% [markdown]
# **Cold and warm, honestly.** A new node has never read the file: the first load comes from
# storage. A restarted pod on the same node finds the file's pages in the kernel's page cache.
# To make a load cold without root, drop each file's pages with
# `posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)` (`labsupport.pagecache.drop`; the file was
# fsynced after writing - dirty pages cannot be dropped). `mincore` on a mapping of the file
# says how much of it is cached (`pagecache.resident_fraction`, what `fincore` prints):

# %%
from labsupport import pagecache

train_pt = ckpt.train_path
print(f"after writing it:   {pagecache.resident_fraction(train_pt):.0%} of train.pt cached")
pagecache.drop(*ckpt.files())
print(f"after the drop:     {pagecache.resident_fraction(train_pt):.0%}")
with open(train_pt, "rb") as f:
    while f.read(1 << 24):
        pass
print(f"after reading it:   {pagecache.resident_fraction(train_pt):.0%}")

# %% [markdown]
# Now production's load, in a fresh process: cold (every file dropped just before), then warm
# (the same load at once). Beside the wall time, what the kernel counted for the process over
# the load (`/proc/self/io`): `read_bytes` is what it had to fetch from storage, `rchar` what its
# `read()` calls returned, from the cache or not. A load counts as done when the weights are
# usable: on a GPU after `torch.cuda.synchronize()`, on the CPU once every page was read.

# %%
from labsupport import isolate

with progress.timed(8.0 if SCALE == "full" else 4.0, "production's start, cold and warm"):
    run = isolate.run_function(
        "labsupport.scenarios.slow_cold_start.measure:profile",
        ckpt.directory,
        ckpt.needed_bytes,
        timeout_s=300,
    )
assert run.ok, run.error
profile = run.value
for kind in ("cold", "warm"):
    p = profile[kind]
    print(
        f"{kind}: {p['wall_s']:6.2f} s wall, {p['cpu_s']:5.2f} s CPU, "
        f"read_bytes {p['read_bytes'] / 2**20:7.1f} MiB, rchar {p['rchar'] / 2**20:7.1f} MiB, "
        f"cached before {p['resident_before']:.0%}"
    )
print({k: v for k, v in profile.items() if k not in ("cold", "warm")})

# %% [markdown]
# Before you read on: how much of the cold start is the storage's doing, and how much is the
# loader's own work? How many of the bytes fetched from storage does the server use? Would
# local weights (an image layer) or a faster volume fix this start?

# %% [markdown]
# ## 3. Diagnose
#
# **Exercise 1 (graded).** From a start's profile (the dict above), say where its time and its
# bytes go. Stuck? `hint("293", 1, "where_the_time_goes")` (up to 3) gives a hint and notes it
# in your transcript.


# %% tags=["exercise"]
def where_the_time_goes(profile: dict) -> dict:
    """{"storage_s": seconds of the cold start due to storage, "loader_s": seconds the loader
    takes with every byte already in memory, "needless_bytes": bytes fetched from storage that
    the server does not run, "bound": "storage" or "loader", whichever share is larger}.

    profile: {"file_bytes": the checkpoint file's size, "needed_bytes": the bytes of the
    weights the server runs, "device": ..., "cold": LOAD, "warm": LOAD}, each LOAD {"wall_s",
    "cpu_s", "read_bytes": fetched from storage during the load, "rchar": returned by read()
    calls, "resident_before": share of the files cached when it started}. The cold load ran
    right after the page cache was emptied, the warm one right after the cold one.
    """
    # BEGIN SOLUTION
    cold, warm = profile["cold"], profile["warm"]
    storage_s = cold["wall_s"] - warm["wall_s"]  # the page cache is the only difference
    loader_s = warm["wall_s"]  # every byte in memory: what is left is the loader's work
    return {
        "storage_s": storage_s,
        "loader_s": loader_s,
        "needless_bytes": cold["read_bytes"] - profile["needed_bytes"],
        "bound": "storage" if storage_s > loader_s else "loader",
    }
    # END SOLUTION


# %%
found = where_the_time_goes(profile)
print({k: round(v, 3) if isinstance(v, float) else v for k, v in found.items()})

# %% [markdown]
# Grade the diagnosis: the check compares your function with profiles whose answer is known -
# a network volume, a lazy loader, an fp32 checkpoint - and with production's start measured
# again while it runs (the fix checks fail until you write section 4):

# %%
from labsupport import check, hint  # noqa: F401

check("293")

# %% [markdown] tags=["reveal"]
# **What happened.** What `train.pt` holds, by its top-level keys:

# %% tags=["reveal"]
for key, size in ckpt.parts.items():
    print(f"{key:<10} {size / 2**20:8.1f} MiB")
answer = where_the_time_goes(profile)
share = answer["needless_bytes"] / profile["cold"]["read_bytes"]
print(f"{share:.0%} of what the cold start fetched from storage is never served; {answer}")

# %% [markdown] tags=["reveal"]
# - The server loads the **training checkpoint**: the fp32 master weights plus what only
#   training needs - Adam's two moments (`exp_avg`, `exp_avg_sq`, 8 bytes a parameter), an EMA
#   copy - so it reads 4 to 8 times the 2 bytes a parameter it serves, unpickles all of it,
#   copies every tensor out of the file, keeps the fp32 weights and casts them to bf16.
# - The cold start is **loader-bound** here: the warm load - every byte already in memory - is
#   most of it. Unpickling, copying and casting a few hundred MB costs CPU time whether the
#   bytes come from an SSD, an image layer or the page cache. On a slow network volume the
#   storage's share grows with the needless bytes; either way, faster storage fixes neither.
# - A pulled image layer is on the node's disk, and its files are often still in the page cache
#   right after the pull: the first start after a pull is warm-ish, the next new node cold again.
#   Baking 6x the weights into an image also makes every pull 6x slower.

# %% [markdown]
# ## 4. Fix
#
# The loaders on the shelf, each cold and warm, in a fresh process (`measure.table`):
# production's; `torch.load(..., mmap=True, weights_only=True)` of the same `train.pt` (it maps
# the file and reads only the tensors you touch); safetensors to the CPU, then to the device;
# safetensors straight to the device (`load_file(path, device=...)`; on the CPU the last two
# are the same).

# %%
from labsupport import plots
from labsupport.scenarios.slow_cold_start import plots as load_plots

with progress.timed(20.0 if SCALE == "full" else 8.0, "four loaders, cold and warm"):
    run = isolate.run_function(
        "labsupport.scenarios.slow_cold_start.measure:table", ckpt.directory, timeout_s=400
    )
assert run.ok, run.error
loads = run.value
for x in loads:
    print(
        f"{x.loader:<22} {'cold' if x.cold else 'warm'} {x.wall_s:7.3f} s  "
        f"read_bytes {x.read_bytes / 2**20:7.1f} MiB  rchar {x.rchar / 2**20:7.1f} MiB"
    )
_ = plots.show(
    load_plots.loaders(loads, title=f"{ckpt.params / 1e6:.0f} M parameters, {profile['device']}")
)

# %% [markdown]
# **Exercise 2 (graded).** Write the server's loader: from the model directory, the weights the
# server runs, on `device`. Pick the file and the way to load it. `hint("293", 1,
# "load_weights")` if you want one.

# %% tags=["exercise"]
import os


def load_weights(directory: str, device: str) -> dict:
    """{name: tensor} - the weights the server runs (bf16, named as in train.pt's "model"), on
    `device` ("cpu" or "cuda:0"), loaded from the files in `directory` (train.pt and
    model.safetensors). The grader times it cold, against production's loader."""
    # BEGIN SOLUTION
    from safetensors.torch import load_file

    # the publish step's export: exactly the served tensors, bf16, by name; mapped, no pickle,
    # no copy on the CPU, each tensor straight to the device
    return load_file(os.path.join(directory, "model.safetensors"), device=device)
    # END SOLUTION


# %% [markdown]
# The grader's trial, run here too: production's load and yours take turns in one fresh
# process (contained, as your code always runs), every load cold; then what yours returned,
# tensor by tensor, against the checkpoint's own hashes.

# %%
from labsupport import portable

with progress.timed(12.0 if SCALE == "full" else 5.0, "production vs yours, cold, in turns"):
    run = isolate.run_function(
        "labsupport.scenarios.slow_cold_start.measure:trial",
        ckpt.directory,
        portable.sendable(load_weights),
        timeout_s=400,
    )
assert run.ok, run.error
result = run.value
for x in result.loads:
    print(f"{x.loader:<11} cold {x.wall_s:7.3f} s  read_bytes {x.read_bytes / 2**20:7.1f} MiB")
same = {n: h for n, (_, _, _, h) in result.tensors.items()} == ckpt.hashes
print(f"{len(result.tensors)} tensors, the served weights exactly: {same}")

# %%
check("293")

# %% [markdown] tags=["reveal"]
# The export holds exactly what the server runs, 2 bytes a parameter: a cold start fetches
# only those bytes, and safetensors maps the file and hands out tensors over the mapping - no
# unpickling (no code runs: a pickle can execute anything, which is why `torch.load` defaults
# to `weights_only=True` since PyTorch 2.6), no copy on the CPU. With `device="cuda:0"` each
# tensor is copied from the mapping to the GPU. `torch.load(mmap=True, weights_only=True)` of
# the training checkpoint also skips the optimizer's bytes (it reads only what you touch) but
# still reads fp32 and casts.

# %% [markdown]
# ## 5. Verify
#
# From the trial above: production's fastest cold load against yours, the same process,
# taking turns, every one cold.

# %%
from labsupport import headline

before, after = result.coldest("production"), result.coldest("yours")
_ = plots.show(
    plots.before_after(
        {"production: torch.load(train.pt)": before, "yours": after},
        unit="s",
        title=f"cold weights load, {ckpt.params / 1e6:.0f} M parameters, {result.device}",
    )
)
_ = headline.record(
    "293",
    metric="cold weights load",
    before=before,
    after=after,
    unit="s",
    seed=SEED,
    device=result.device,
    params_m=round(ckpt.params / 1e6, 1),
    train_pt_mib=round(ckpt.train_bytes / 2**20, 1),
    served_mib=round(ckpt.needed_bytes / 2**20, 1),
    production_warm_s=profile["warm"]["wall_s"],
    read_mib_production=round(
        max(x.read_bytes for x in result.loads if x.loader == "production") / 2**20, 1
    ),
    read_mib_yours=round(max(x.read_bytes for x in result.loads if x.loader == "yours") / 2**20, 1),
)

# %%
checkpoint.remove(ckpt)  # a few hundred MB on /var/tmp

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** Do you put the model weights into the Docker image, or pull them from
# S3 when the pod starts? Which starts faster?
#
# **Model answer.** Neither choice is the first lever; bytes and the loader are. I measure a
# start cold and warm and split it: what storage costs (cold minus warm), what the loader costs
# (warm), and how many of the fetched bytes the server uses. Then: serve a **serving
# artifact** - the bf16 (or quantised) weights in safetensors, written by the publish step and
# versioned by digest - not the training checkpoint with its optimizer state; load it with a
# zero-copy loader straight to the GPU; and deliver it so that new nodes do not pay the full
# price: a Kubernetes **image volume** (an OCI artifact with the weights, mounted read-only,
# separate from the runtime image; beta since Kubernetes 1.33, on by default since 1.35), a
# node-local NVMe cache
# filled by a DaemonSet, or a streaming loader that reads from object storage in parallel and
# overlaps reads with copies to the GPU (vLLM's `--load-format runai_streamer`,
# `fastsafetensors`). A 20 GB+ runtime image makes every pull, every node and every rollout
# slow, and the node's image garbage collection evicts it.
#
# **Where the classic answer falls short.** "Mount a PVC/NAS, use Fluid/Alluxio" is still a
# valid delivery, but it skips:
#
# - **The format.** `torch.load` of a pickle unpickles and copies every tensor (and can run
#   code: `weights_only=True` is the default since PyTorch 2.6); a training checkpoint carries
#   4-8x the bytes the server runs. Safetensors maps the file: no code, no copy.
# - **Cold vs warm.** A restart on the same node reads from the page cache; a new node reads
#   from storage. Measure both, and measure cold honestly (`posix_fadvise(DONTNEED)` per file,
#   `fincore`/`vmtouch` to check), or you will measure your page cache.
# - **Image volumes and streaming loaders** now exist: the weights versioned as an OCI artifact
#   by digest, mounted without rebuilding the runtime image; or streamed from S3 straight to
#   the GPU.
# - **The rest of the start** (CUDA graph capture, `torch.compile`) also counts: lab 288 sizes
#   the startup probe for it; vLLM's compile cache and this lab's loader shrink it.
#
# **Follow-up questions an interviewer asks.**
#
# - The image pull takes 40 s and the load after it 3 s; the PVC load takes 90 s cold. Why is
#   the load after a pull so fast? (The layer's files were just written: their pages are in
#   the page cache. The next pod on a new node pays the pull again.)
# - Tensor parallelism over 8 GPUs: should every rank read the whole file? (No: with
#   safetensors each rank reads its own slices - `safe_open(...).get_slice(name)[...]` - or
#   the checkpoint is pre-sharded per rank.)
# - How would you make a cold start on a new node fast with 140 GB of weights? (Node-local
#   NVMe cache or an image volume pre-pulled by a DaemonSet, a streaming loader with many
#   concurrent reads, fp8 weights, and enough nodes warm before the peak.)
# - `torch.load(..., mmap=True)` made our load instant, but the first request took 30 s.
#   Why? (mmap is lazy: the reads happen on first touch. Time a load until the weights are
#   usable.)
# - Why is pickle a security problem for model files? (Unpickling can call any importable
#   function; a model downloaded from a hub can run code on load.)
#
# **References.**
#
# - Kubernetes, image volumes: https://kubernetes.io/docs/tasks/configure-pod-container/image-volumes/
# - safetensors (format, zero-copy, `safe_open`, `load_file(device=)`):
#   https://huggingface.co/docs/safetensors/index
# - `torch.load` (`mmap`, `weights_only`, the default changed in 2.6):
#   https://docs.pytorch.org/docs/stable/generated/torch.load.html
# - vLLM, Run:ai Model Streamer: https://docs.vllm.ai/en/stable/models/extensions/runai_model_streamer/
# - fastsafetensors (GPU Direct Storage loading): https://github.com/foundation-model-stack/fastsafetensors
# - Linux `posix_fadvise(2)` (`POSIX_FADV_DONTNEED`), `mincore(2)`, `/proc/PID/io`
#   (`read_bytes`, `rchar`): https://man7.org/linux/man-pages/man2/posix_fadvise.2.html,
#   https://man7.org/linux/man-pages/man5/proc_pid_io.5.html
