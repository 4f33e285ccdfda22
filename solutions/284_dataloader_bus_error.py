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
# # Lab 284 - DataLoader workers die with a bus error
#
# A fine-tuning job's DataLoader workers die a few steps in, on a GPU node with hundreds of
# gigabytes of free memory. You will run the job's real `torch.utils.data.DataLoader` under
# the same small `/dev/shm` as its container (a private mount namespace with a tmpfs of the
# container's size), read what `df` and `ls` show, compute how much shared memory the loader
# needs, decide why it did not get it, and fix it twice: loader settings that fit the room
# the job has today, and a Pod that gives it the right room and pays for it. About 35
# minutes; the code runs in about a minute.

# %%
from labsupport import device, session

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("284", seed=SEED)
_ = device.banner(gpu="none")

from labsupport.scenarios.dataloader_bus_error import runs

print("private /dev/shm for the job's runs:", runs.mode())
if runs.mode() == "stand-in":
    print(runs.STAND_IN)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV3 - finetune-vlm: job failed 3 times in a row** (06:20 UTC)
# >
# > ```
# > $ kubectl logs finetune-vlm --previous | tail -3
# > ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient
# > shared memory (shm).
# > RuntimeError: DataLoader worker (pid 812) is killed by signal: Bus error.
# > RuntimeError: DataLoader worker (pid(s) 812) exited unexpectedly
# > ```
# >
# > | panel | value |
# > |---|---|
# > | node | 8x H100, 2 TiB RAM, 1.6 TiB free |
# > | container memory | 6-9 GiB of its limit, no OOM kill today |
# > | GPU utilisation before the crash | 97% |
# > | restarts | 3 (restartPolicy: OnFailure) |
# >
# > What changed this week: the data team raised `num_workers` and `prefetch_factor` so the
# > new GPUs never wait for data; on Tuesday one container of this job was OOMKilled and
# > restarted in the same pod. Production runs torch 2.9; staging, where you are, runs the
# > torch printed in the banner above.
#
# The node has memory to spare and the container is far from its limit, yet the workers die.
# Which memory ran out, how much does the job need, and why did it not have it?

# %% [markdown]
# ## 2. Reproduce
#
# The job's Pod, as it runs in production (the image is a placeholder):

# %%
from labsupport.scenarios import dataloader_bus_error as scenario

v = scenario.variant(SEED)
print(v.manifest)
print("the job's loader:", v.loader.describe())
print(f"a batch is {v.loader.batch_bytes / 2**20:.2f} MiB")

# %% [markdown]
# What runs it here:
#
# - **The loader** is the job's: a real `torch.utils.data.DataLoader` with its settings, over
#   samples the size of the job's images. Reading a sample from storage is a sleep
#   (`v.pace.read_s`), so is the GPU step (`v.pace.step_s`), and the first step takes longer
#   (`v.pace.warmup_s`: compiling the model). The workers are real processes, forked by the
#   DataLoader, and their batches travel through shared memory as torch sends them.
# - **The container's `/dev/shm`** is a real tmpfs of the container's size, mounted in a
#   private mount namespace (`unshare(CLONE_NEWNS)`, then `mount -t tmpfs -o size=...`) that
#   only the job's processes see, as a container runtime gives each container its own.
#   Whatever else was in the pod's `/dev/shm` when the job started is there too.
#
# Run the job (about 10 s: a fresh process, the loader, then the same thing the way
# production's torch 2.9 fails):

# %%
import dataclasses

from labsupport import progress

demo_arm = dataclasses.replace(
    v.arm("a sample cache in shared memory", v.loader.with_settings(2, 2), as_found=False),
    cache_samples=True,
)
incident, demo = runs.run([v.arm("incident"), demo_arm], echo=progress.echo("runs"))
print(incident.summary())
print(incident.error)

# %%
from labsupport import plots
from labsupport.scenarios.dataloader_bus_error import plots as shm_plots

_ = plots.show(shm_plots.usage([incident], title="the job in its container's /dev/shm"))

# %% [markdown]
# The workers die as in production, with a different message. This torch reports
# `unable to allocate shared memory(shm) ... No space left on device (28)` from inside a
# worker; production's torch 2.9 reported a worker killed by `Bus error`. The second run
# shows where that message comes from: workers that keep samples in shared memory allocated
# the way torch 2.9 allocated every batch (a segment sized with `ftruncate`, nothing
# reserved), in the same kind of tmpfs (their batches carry only a handle, so the cache alone
# fills the room):

# %%
print(demo.summary())
print(demo.error)

# %% [markdown]
# Same room, same overflow, two messages: torch >= 2.10 asks the file system to reserve a
# segment's pages when it creates it, and gets an error it can report; a segment that was
# only given a size gets its pages when they are first written, and a page the tmpfs cannot
# back is a `SIGBUS` for the process that touches it. Either way a worker dies, the epoch is
# lost, and `restartPolicy: OnFailure` starts it again into the same wall.

# %% [markdown]
# ## 3. Diagnose
#
# What on-call can see: `df -B1 /dev/shm` and `ls -l /dev/shm` in the container before the job
# started, the loader's settings, and `/dev/shm` in use while it ran (sampled every 2 ms).

# %%
evidence = incident.evidence()
mib = 2**20
print(f"df /dev/shm before the job: size {evidence['room_bytes'] / mib:.0f} MiB, used "
      f"{evidence['used_before_bytes'] / mib:.1f} MiB")  # fmt: skip
print("ls /dev/shm before the job:", evidence["listing_before"] or "(empty)")
peak = max(b for _, b in evidence["timeline"])
print(f"peak in use while it ran: {peak / mib:.1f} MiB, after {evidence['steps_done']} steps")
print("loader:", evidence["loader"])

# %% [markdown]
# To size anything, you need what the loader uses when nothing stops it. Run the same loader
# (and a second one, with other settings) in a roomy `/dev/shm`, the way you would on a dev
# box with `docker run --shm-size=512m` (about 10 s):

# %%
ample = 512 * mib
debug = runs.run(
    [
        v.arm("the job's loader, 512 MiB /dev/shm", room_bytes=ample, as_found=False),
        v.arm("other settings, 512 MiB /dev/shm", v.other, room_bytes=ample, as_found=False),
    ],
    echo=progress.echo("debug runs"),
)
for run in debug:
    print(run.summary())
_ = plots.show(shm_plots.usage(debug, title="the same loaders with room to spare"))

# %% [markdown]
# Watch the first half second: while the training loop runs its first (slow) step, the
# workers keep producing batches, and `/dev/shm` climbs in steps of one batch until it
# levels off. How many batches is that, and what decides it?
#
# **Exercise 1 (graded).** Write the calculator: the most `/dev/shm` a loader can use at once.

# %% tags=["exercise"]
import math

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "uint8": 1}


def shm_needed_bytes(loader: dict) -> int:
    """Bytes of /dev/shm this DataLoader can hold at once, at its worst moment.

    `loader` is {"sample_shape": [3, 256, 256], "dtype": "float32", "batch_size": 8,
    "num_workers": 6, "prefetch_factor": 2, "pin_memory": True}. Each worker sends every batch
    it makes to the training process through shared memory; count the batches that can exist
    there at the same time (look at the runs above: how many batch-sized steps does the
    plateau have, for these settings?), times the bytes of one batch. With num_workers=0
    batches are made in the training process itself. pin_memory copies batches into
    page-locked memory in the training process: is that in /dev/shm?
    """
    # BEGIN SOLUTION
    if loader["num_workers"] == 0:
        return 0
    batch = math.prod(loader["sample_shape"]) * _DTYPE_BYTES[loader["dtype"]] * loader["batch_size"]
    # outstanding index batches (workers x prefetch), the batch the loop trains on, and the
    # previous one, still referenced while next() receives the new one
    in_flight = loader["num_workers"] * loader["prefetch_factor"] + 2
    return in_flight * batch
    # END SOLUTION


# %%
for run in debug:
    need = shm_needed_bytes(run.loader.as_dict())
    print(f"{run.arm}: measured peak {run.loader_peak_bytes / mib:.1f} MiB, "
          f"your need {need / mib:.1f} MiB")  # fmt: skip
print(f"the incident's loader needs {shm_needed_bytes(v.loader.as_dict()) / mib:.1f} MiB; "
      f"its container had {evidence['room_bytes'] / mib:.0f} MiB")  # fmt: skip

# %% [markdown]
# Two explanations fit a full `/dev/shm` after this week's changes: the loader itself needs
# more than the room (the new settings), or the room was not empty when the job started (the
# pod's `/dev/shm` lives as long as the pod; something else may be using it). The evidence
# decides which, with numbers.
#
# **Exercise 2 (graded).** From the evidence of a run, name the cause and back it with numbers.


# %% tags=["exercise"]
def diagnose(evidence: dict) -> dict:
    """Why did the loader run out of /dev/shm?

    `evidence` has room_bytes (df's size of /dev/shm), used_before_bytes (df's used before the
    job started), listing_before (ls: [name, bytes] before the job started), loader (as in
    shm_needed_bytes), timeline ([seconds, used bytes] while it ran), steps_done and error.
    Return {"cause": ..., "needed_bytes": ..., "free_bytes": ...}: cause "loader" when the
    loader alone needs more than the whole room (it would fail in an empty /dev/shm of that
    size), "occupied" when it would fit an empty room but the room was not empty; needed_bytes
    what the loader needs (your shm_needed_bytes); free_bytes what was free when it started.
    `ls` and `df` do not always agree: which one counts what the kernel has handed out?
    """
    # BEGIN SOLUTION
    need = shm_needed_bytes(evidence["loader"])
    free = evidence["room_bytes"] - evidence["used_before_bytes"]
    cause = "loader" if need > evidence["room_bytes"] else "occupied"
    return {"cause": cause, "needed_bytes": need, "free_bytes": free}
    # END SOLUTION


# %%
found = diagnose(evidence)
print(found["cause"], f"needs {found['needed_bytes'] / mib:.1f} MiB,",
      f"{found['free_bytes'] / mib:.1f} MiB were free")  # fmt: skip

# %% [markdown]
# Grade the diagnosis (the fix checks fail until you write section 4):

# %%
from labsupport import check  # hint("284", 1, "diagnose") if you are stuck

check("284")

# %% [markdown] tags=["reveal"]
# ### What happened
#
# **How much a DataLoader keeps in shared memory.** A DataLoader with workers keeps
# `num_workers x prefetch_factor` batches of indices outstanding: it sends the next index
# batch to a worker as soon as it receives a finished batch (`_try_put_index` in
# `torch/utils/data/dataloader.py`). Each worker collates its batch straight into a new
# shared-memory segment (`default_collate` allocates the output with `_new_shared` when it
# runs in a worker) and sends a handle to it; the segment lives until the training loop drops
# the batch. While the first step runs, every worker fills its prefetch; the loop holds the
# batch it trains on, and during `next()` still the previous one: up to
# `(num_workers x prefetch_factor + 2) x batch bytes`. Raising `num_workers` and
# `prefetch_factor` multiplies it; `pin_memory` does not add to it (the pinned copy is
# page-locked memory in the training process, counted in its memory, not in `/dev/shm`).
#
# **Who else is in the room.** In Kubernetes a container's `/dev/shm` belongs to the pod (the
# sandbox's IPC namespace, or an emptyDir): it outlives a container that is restarted in the
# same pod. A process killed with SIGKILL (an OOM kill kills the whole container) runs no
# cleanup: segments it created with `multiprocessing.shared_memory` (named `psm_*`), or with
# torch's `file_system` strategy (`torch_*`), stay until someone deletes them, and with them
# their memory. `ls` shows those; `df` also counts segments that are unlinked but still
# mapped by a living process (torch's default strategy unlinks its segments at once: the
# batches in flight are invisible to `ls`). In some variants of this lab the loader alone
# does not fit; in others it would, had a killed container not left its segments behind.
#
# **Why the message changed.** Up to torch 2.9 a new segment was sized with `ftruncate`:
# the size is recorded, no page is allocated, and when a write needs a page the full tmpfs
# cannot give, the kernel sends SIGBUS, which DataLoader workers report as "Unexpected bus
# error" (Python's `multiprocessing.shared_memory` still behaves so: CPython issue 114390).
# Since torch 2.10 `MapAllocator` calls `posix_fallocate` first (pytorch/pytorch#161910): the
# tmpfs reserves every page up front, and a full one returns ENOSPC, which torch raises as
# "unable to allocate shared memory(shm)". Checked in the wheels: the string is absent from
# torch 2.9.1's `libtorch_cpu.so` and present in 2.10.0's.

# %% [markdown]
# ## 4. Fix
#
# Two fixes, for two time scales. Today, without touching the Pod: settings that fit the
# room the job actually has, and still keep the GPU fed. A worker needs
# `read_s x batch_size` to make a batch and the GPU step takes `step_s`:

# %%
free_now = v.room_bytes - sum(v.found_bytes)
print(f"a worker makes a batch in {1000 * v.pace.read_s * v.loader.batch_size:.0f} ms, a step "
      f"takes {1000 * v.pace.step_s:.0f} ms: at least {v.min_workers} workers")  # fmt: skip
print(f"/dev/shm free when the job starts: {free_now / mib:.1f} MiB")

# %% [markdown]
# What people reach for, and why it does not hold:
#
# - **`num_workers=0`**: no shared memory at all, and the GPU waits for every batch;
# - **`torch.multiprocessing.set_sharing_strategy("file_system")`**: segments get names and a
#   manager process instead of file descriptors; they still live in `/dev/shm`;
# - **`--shm-size=8g` / "30% of RAM"** (the classic answer): in Kubernetes there is no
#   `--shm-size`, and a memory-backed volume is memory of the pod: sized from the node, not
#   the need, it is a large, silent claim on the memory limit.
#
# **Exercise 3 (graded).** Settings that fit the free room, with enough workers.


# %% tags=["exercise"]
def loader_settings(loader: dict, free_bytes: int, min_workers: int) -> dict:
    """{"num_workers": w, "prefetch_factor": p} for this loader in `free_bytes` of /dev/shm.

    Keep at least `min_workers` workers (fewer and the GPU step waits for data), keep as much
    prefetch as fits (it absorbs slow reads), and make sure everything the loader can hold at
    once fits in `free_bytes` (use shm_needed_bytes). Raise ValueError if nothing fits: then
    only more room helps. The grader runs the job with your settings in the incident's
    /dev/shm, with whatever was in it.
    """
    # BEGIN SOLUTION
    for workers in range(max(loader["num_workers"], min_workers), min_workers - 1, -1):
        prefetch = 0
        while shm_needed_bytes({**loader, "num_workers": workers,
                                "prefetch_factor": prefetch + 1}) <= free_bytes:  # fmt: skip
            prefetch += 1
        if prefetch >= 1:
            return {"num_workers": workers, "prefetch_factor": prefetch}
    raise ValueError(f"no settings with {min_workers}+ workers fit in {free_bytes} bytes")
    # END SOLUTION


# %%
settings = loader_settings(v.loader.as_dict(), free_now, v.min_workers)
fixed_loader = v.loader.with_settings(settings["num_workers"], settings["prefetch_factor"])
print("your settings:", settings)
[fixed_run] = runs.run([v.arm("your settings", fixed_loader)], echo=progress.echo("run"))
print(fixed_run.summary())

# %% [markdown]
# For good, the Pod: a volume on `/dev/shm` sized for the loader. In Kubernetes that is an
# `emptyDir` with `medium: Memory` (a tmpfs) mounted at `/dev/shm`. Its usable size is the
# smaller of its `sizeLimit` and the pod's memory limits, and every byte written to it is
# charged to the container's memory cgroup: it counts against the memory limit, and a full
# one ends in an OOM kill of the container, not a bus error. So the limit must grow with it,
# and also pay for the pinned copies of the prefetched batches (`pin_memory=True` on a GPU
# node: page-locked memory of the training process).
#
# **Exercise 4 (graded).** Write the fixed Pod.


# %% tags=["exercise"]
def pod_manifest(loader: dict, job_memory_bytes: int) -> str:
    """The finetune-vlm Pod (YAML) with a /dev/shm sized for `loader`.

    Start from the incident's manifest (print(v.manifest)): same container, command and GPU.
    Mount an emptyDir with medium: Memory at /dev/shm, with a sizeLimit that covers what the
    loader can hold at once with a margin (not the node's memory). Set the memory limit (and
    request) so that the trainer's own `job_memory_bytes`, the whole sizeLimit and the pinned
    copies of the prefetched batches (pin_memory) fit. Quantities: "96Mi", "7Gi" ...
    """
    # BEGIN SOLUTION
    need = shm_needed_bytes(loader)
    size_mib = math.ceil(1.5 * need / 2**20)
    pinned = 0
    if loader.get("pin_memory") and loader["num_workers"]:
        batch = need // (loader["num_workers"] * loader["prefetch_factor"] + 2)
        pinned = (loader["num_workers"] * loader["prefetch_factor"] + 2) * batch
    # the trainer's own memory with the headroom it had, then what /dev/shm and pinning add
    memory_mib = math.ceil(job_memory_bytes / 2**30 + 1.5) * 1024 + size_mib
    memory_mib += math.ceil(pinned / 2**20)
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: finetune-vlm
  labels: {{app: finetune-vlm}}
spec:
  restartPolicy: OnFailure
  containers:
  - name: trainer
    image: registry.example.com/finetune-vlm:2026.11
    command: [python, train.py, --config, configs/vlm.yaml]
    resources:
      requests: {{cpu: "16", memory: {memory_mib}Mi, nvidia.com/gpu: 1}}
      limits: {{memory: {memory_mib}Mi, nvidia.com/gpu: 1}}
    volumeMounts:
    - {{name: dshm, mountPath: /dev/shm}}
  volumes:
  - name: dshm
    emptyDir: {{medium: Memory, sizeLimit: {size_mib}Mi}}
"""
    # END SOLUTION


# %%
from labsupport.k8s import manifests
from labsupport.scenarios.dataloader_bus_error import pod

fixed_pod = pod_manifest(v.loader.as_dict(), v.job_memory_bytes)
manifests.validate(fixed_pod, require_command=False)
given = pod.read(fixed_pod)
print(f"the kubelet's /dev/shm for this Pod: {given.shm_room_bytes / mib:.0f} MiB, "
      f"memory limit {given.memory_limit_bytes / 2**30:.2f} GiB")  # fmt: skip
[pod_run] = runs.run(
    [v.arm("your Pod", room_bytes=given.shm_room_bytes, as_found=False)],
    echo=progress.echo("run"),
)
print(pod_run.summary())

# %% [markdown]
# A new pod starts with an empty emptyDir, so whatever a killed container left behind is gone
# with the old pod. Grade the fixes:

# %%
check("284")

# %% [markdown]
# ## 5. Verify
#
# The job three ways in one run: as in production, with your settings in the same room, and
# in your Pod's `/dev/shm` (about 15 s). The headline compares the room each gets with what
# the loader's measured peak needs: below 1 it dies, above 1 it trains.

# %%
scale = session.scale()
steps = 24 if scale == "full" else 16
verify = runs.run(
    [
        v.arm("as in production", steps=steps),
        v.arm("the job's loader, 512 MiB", room_bytes=ample, as_found=False, steps=steps),
        v.arm("your settings", fixed_loader, steps=steps),
        v.arm("your Pod", room_bytes=given.shm_room_bytes, as_found=False, steps=steps),
    ],
    echo=progress.echo("verify"),
)
before_run, roomy, settings_run, pod_verify = verify
for run in verify:
    print(run.summary())
_ = plots.show(shm_plots.usage([before_run, settings_run, pod_verify], title="before and after"))

# %%
from labsupport import headline

loader_peak = roomy.loader_peak_bytes
before = (before_run.room_bytes - before_run.used_before_bytes) / loader_peak
after = (pod_verify.room_bytes - pod_verify.used_before_bytes) / loader_peak
bars = plots.before_after(
    {"as in production": before, "your Pod": after},
    unit="x",
    title="free /dev/shm over the loader's measured peak",
)
_ = plots.show(bars)
_ = headline.record(
    "284",
    metric="free /dev/shm over the loader's measured peak",
    before=round(before, 3),
    after=round(after, 3),
    unit="x",
    higher_is_better=True,
    loader=v.loader.describe(),
    loader_peak_mib=round(loader_peak / mib, 1),
    before_completed=before_run.completed,
    before_steps=before_run.steps_done,
    settings=settings,
    settings_completed=settings_run.completed,
    settings_idle=round(settings_run.idle_fraction, 3),
    pod_room_mib=round(pod_verify.room_bytes / mib, 1),
    pod_completed=pod_verify.completed,
    mode=before_run.mode,
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** In Docker, a too-small `/dev/shm` breaks the DataLoader. How much
# shm do you give the container?
#
# **Model answer.** As much as the loader can hold at once, with a margin, and I compute it:
# DataLoader workers pass every batch through shared memory, and the loader keeps
# `num_workers x prefetch_factor` batches outstanding plus the one or two the training loop
# holds, so `(workers x prefetch + 2) x batch bytes` (for 6 workers, prefetch 2 and 6 MiB
# batches, 84 MiB: more than Docker's 64 MiB default). I check it against the peak of
# `df /dev/shm` in a run with room to spare. In Docker that is `--shm-size` (or `--ipc=host`);
# in Kubernetes an `emptyDir: {medium: Memory, sizeLimit: ...}` mounted at `/dev/shm`, and I
# raise the memory limit by the same amount, because tmpfs pages are charged to the container:
# a volume that is too big for the limit ends in an OOM kill instead of a bus error. Before
# resizing I look at what else is in `/dev/shm` (`ls`, `df`): segments left by killed
# processes hold memory until someone deletes them, and the pod's `/dev/shm` outlives its
# containers.
#
# **Where the classic answer falls short.** "Docker defaults to 64 MB, use `--shm-size=8g`;
# in Kubernetes an emptyDir of 30% of physical memory" leaves out:
#
# - **The size follows from the loader.** 8 GiB is a guess that is too small for video
#   batches and wastes memory for token batches; workers x prefetch x batch is the number.
# - **It is not free memory.** A `medium: Memory` emptyDir counts against the container's
#   memory limit (and its usable size is the smaller of `sizeLimit` and the pod's memory
#   limits); sized from the node, it can take the memory the job needs.
# - **The message changed.** Since torch 2.10 the same overflow is `RuntimeError: unable to
#   allocate shared memory(shm) ... No space left on device`, not a bus error: torch reserves
#   segments with `posix_fallocate`. The bus error still comes from code that only
#   `ftruncate`s (older torch, `multiprocessing.shared_memory`, some native libraries).
# - **Other tenants.** NCCL and vLLM's multi-process engine also use `/dev/shm`, and segments
#   of killed processes stay: the free room, not the size, is what the loader gets.
# - **Other knobs.** `prefetch_factor` and `num_workers` trade shared memory for smoothing;
#   `persistent_workers=True` avoids re-forking workers each epoch; the `file_system` sharing
#   strategy does not move anything out of `/dev/shm`.
#
# **Follow-up questions an interviewer asks.**
#
# - Your job sets `pin_memory=True`. Does that change the shm size? The memory limit?
#   (No; yes: page-locked copies of the prefetched batches in the training process.)
# - `ls /dev/shm` is empty but `df` says it is full. How? (Unlinked segments still mapped by a
#   living process: torch's default strategy unlinks at once; `lsof`/`/proc/*/maps` name them.)
# - The pod restarts and the job fails sooner each time. Why? (Segments of SIGKILLed
#   containers accumulate in the pod's `/dev/shm`; clean it at start, or let the pod go.)
# - Why is vLLM's advice `--ipc=host` or `--shm-size`, and what does `--ipc=host` cost?
#   (Tensor-parallel workers and NCCL exchange through shm; the host's IPC namespace is
#   shared with every other container that has it.)
#
# **References.**
#
# - PyTorch, `torch.utils.data` multi-process loading and memory pinning:
#   https://docs.pytorch.org/docs/stable/data.html#multi-process-data-loading
# - PyTorch, sharing strategies: https://docs.pytorch.org/docs/stable/multiprocessing.html#sharing-strategies
# - PyTorch PR 161910, `posix_fallocate()` for shared memory:
#   https://github.com/pytorch/pytorch/pull/161910
# - CPython issue 114390, SharedMemory crashes with SIGBUS on insufficient shm:
#   https://github.com/python/cpython/issues/114390
# - Kubernetes volumes, emptyDir: https://kubernetes.io/docs/concepts/storage/volumes/#emptydir
#   (and the API reference for `EmptyDirVolumeSource.sizeLimit`)
# - vLLM, deploying with Docker (`--ipc=host`, `--shm-size`):
#   https://docs.vllm.ai/en/latest/deployment/docker.html
