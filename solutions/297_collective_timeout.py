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
# # Lab 297 - Collective operation timed out
#
# A tensor-parallel model server stops producing tokens. Nothing crashes; ten minutes later
# both ranks die with a collective timeout, and the network gets the blame. You will run the
# real thing - two `torch.distributed` processes exchanging tensors over loopback - watch it
# stop, rule the network in or out from evidence, read each rank's collectives from PyTorch's
# flight recorder and find which rank broke the job, fix the code, and size a timeout that
# makes the next stop report itself in seconds instead of hanging. About 40 minutes; the code
# runs in about 2 minutes.

# %%
from labsupport import device, session
from labsupport.scenarios import collective_timeout as scenario

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("297", seed=SEED)
variant = scenario.variant(SEED)
SCALE = session.scale()  # "full"; the test suite runs a shorter "suite" scale
_ = device.banner(
    gpu="optional",
    stand_in="two gloo ranks on loopback stand in for two NCCL ranks on two GPUs (NCCL "
    "refuses two ranks on one GPU; with a GPU the ranks' tensors live on it); gloo has no "
    "watchdog, so the lab's rank runner dumps the flight recorder on a timeout as NCCL's "
    "watchdog does",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV2 - llm-tp2 replica 3: 0 tokens/s** (02:14 UTC)
# >
# > | panel | value |
# > |---|---|
# > | tokens/s, replica 3 | 0 since 02:03; replicas 1, 2, 4 fine |
# > | GPU utilisation, both GPUs | 100 % (NCCL kernels spin while they wait) |
# > | process state | both ranks alive, no exception, no log line since 02:03 |
# > | 02:13, both ranks | `Watchdog caught collective operation timeout` (below), then torn down |
# >
# > ```
# > [rank0]:[E ProcessGroupNCCL.cpp] Watchdog caught collective operation timeout:
# >   WorkNCCL(SeqNum=8213, ..., Timeout(ms)=600000) ran for 600042 milliseconds before timing out.
# > [rank1]:[E ProcessGroupNCCL.cpp] ... WorkNCCL(SeqNum=8213, ...) ran for 600039 milliseconds ...
# > ```
# >
# > What changed: yesterday's release (expert-routing update; requests that finish early stop
# > being sampled) and, last week, the node pool moved to hosts with a new bonded network
# > interface (`bond0`).
#
# The network team says the links are clean. The usual list for "NCCL timeout" is firewall,
# wrong socket interface (`NCCL_SOCKET_IFNAME`), MTU. Is it the network?

# %% [markdown]
# ## 2. Reproduce
#
# The job, as it runs here:
#
# - **Two ranks**, real processes started like `torchrun` would (`labsupport.distributed`),
#   joined in one process group over loopback. They use gloo - NCCL refuses two ranks on one
#   GPU - with their tensors on the GPU when there is one; the collectives are the real
#   `torch.distributed` calls.
# - **Every step** (`labsupport.scenarios.collective_timeout.job`), as a tensor-parallel server
#   with an expert layer runs it: rank 0's scheduler picks the batch and **broadcasts** it;
#   each rank computes its experts' part of the hidden state and an **all_reduce** sums the
#   parts; each rank samples the next token of its own requests and an **all_gather** puts the
#   batch together. Rank 0 saves a checkpoint every few steps while the other rank waits.
# - **Production's settings**: `init_process_group` without a `timeout` (torch's default: 30
#   minutes for gloo, 10 for NCCL), no flight recorder. The launcher stops the job once it has
#   reported nothing for a while: here that stands for the ten minutes on the page.

# %%
from labsupport import plots
from labsupport.scenarios.collective_timeout import job, runs
from labsupport.scenarios.collective_timeout import plots as job_plots

plan = variant.plan
print(
    f"{plan.steps} steps; each step: {', '.join(job.OPS)}; batch {plan.batch} tokens, hidden "
    f"{plan.hidden}; rank 0 saves a checkpoint every {plan.checkpoint_every} steps "
    f"({plan.checkpoint_s} s)"
)
IDLE_S = 15.0 if SCALE == "full" else 6.0
incident = runs.incident(plan, idle_s=IDLE_S)
print(incident.summary())
print("steps each rank finished:", runs.steps_done(incident))
print("anything on stderr:", [r.stderr or "nothing" for r in incident.ranks])

# %%
_ = plots.show(job_plots.timeline(incident, title="the incident: production's settings"))

# %% [markdown]
# Both ranks are alive, report nothing, and would stay like that for 30 minutes (10 with NCCL,
# then the watchdog on the page). First suspect: the new network interface. What a job whose
# ranks cannot reach each other looks like - the same job, told to use an interface this host
# does not have:

# %%
bad = runs.wrong_interface(plan)
print(bad.summary())
print(bad.ranks[0].stderr.splitlines()[-1][:200])

# %% [markdown]
# A network or interface problem breaks the job where the ranks first connect: in
# `init_process_group`, at start, on every rank, with the interface named (NCCL's version:
# `Bootstrap : no socket interface found`, or a connect timeout to a peer's address). The
# incident's job initialised fine and ran several steps first.
#
# Before you read on: the ranks have exchanged dozens of tensors. What could make two healthy
# processes wait for each other forever, and which evidence would tell you which rank is at
# fault?

# %% [markdown]
# ## 3. Diagnose
#
# Two real tools. First, `TORCH_DISTRIBUTED_DEBUG=DETAIL`: before every collective each rank
# sends the collective's fingerprint (sequence number, op, shapes) to the others and compares
# (an extra collective per collective - a debugging setting). The same job, with the lab's
# short timeout (2 s):

# %%
import re

detail = runs.fingerprints(plan)
for r in detail.ranks:
    message = re.sub(r", TensorDeviceTypes=TensorOptions\(.*?\(nullopt\)\)", "", r.error)
    print(f"rank {r.rank}: {message[:480]}\n")

# %% [markdown]
# Each rank says the other is "running" something else, and DETAIL counts collectives from 0.
# Useful, but which of the two is wrong? Second tool: the **flight recorder**.
# `TORCH_FR_BUFFER_SIZE` (formerly `TORCH_NCCL_TRACE_BUFFER_SIZE`) keeps each rank's last
# collectives in a ring buffer - sequence number (from 1), op, sizes, whether it finished - and
# `TORCH_NCCL_DUMP_ON_TIMEOUT=1` dumps it when a collective times out, on every rank. The same
# job again, recorder on:

# %%
from labsupport.distributed import flight

recorded = runs.recorded(plan)
print(recorded.summary(), "\n")
print(flight.table(recorded.traces))
traces = recorded.traces
print("\none entry as dumped:", traces[0][-1])

# %% [markdown]
# **Exercise 1 (graded).** Write the analysis you would run on any job's dumps: which
# collective is the first that did not finish, what the program runs there, and which rank
# broke the order. Stuck? `hint("297", 1, "first_unfinished")` (up to 3) gives a hint and notes it
# in your transcript.


# %% tags=["exercise"]
def first_unfinished(traces: dict) -> dict:
    """From every rank's flight-recorder dump, the first collective that did not finish
    everywhere: {"rank": the rank that broke the order (None when every rank entered that same
    collective), "op": the collective the program runs there, "seq": its sequence number}.

    traces: {rank: [entry, ...]}, each entry a dict as the dump holds it:
    "collective_seq_id" (1, 2, ... per process group), "profiling_name" ("gloo:all_reduce",
    "nccl:broadcast" ...; "op" is the part after the colon), "input_sizes" (one shape per
    tensor), "state" ("scheduled", "started", "completed") and "retired" (True once the work
    finished). Every rank runs the same program: the same collectives, in the same order, step
    after step. A buffer keeps only the last entries, and different ranks may have lost
    different numbers of old ones. Works for any number of ranks.
    """

    # BEGIN SOLUTION
    def parse(entry):
        op = str(entry["profiling_name"]).rpartition(":")[2]
        sizes = tuple(tuple(s) for s in entry.get("input_sizes") or ())
        done = entry.get("state") == "completed" or bool(entry.get("retired"))
        return (op, sizes), done

    by = {
        r: {e["collective_seq_id"]: parse(e) for e in entries if not e.get("is_p2p")}
        for r, entries in traces.items()
    }
    ranks = sorted(by)
    seq = max(min(cs) for cs in by.values() if cs)
    while all(seq in cs and cs[seq][1] for cs in by.values()):
        seq += 1
    # what the program runs at seq: what followed the previous collective when all agreed
    follows = {}
    for s in range(max(min(cs) for cs in by.values() if cs), seq - 1):
        here = {by[r][s][0] for r in ranks}
        nxt = {by[r][s + 1][0] for r in ranks}
        if len(here) == 1 and len(nxt) == 1:
            follows[here.pop()] = nxt.pop()
    present = {r: by[r][seq][0] for r in ranks if seq in by[r]}
    before = by[ranks[0]].get(seq - 1, (None,))[0]
    if before in follows:
        expected = follows[before]
    else:  # no history: what most ranks run
        votes = list(present.values())
        expected = max(votes, key=votes.count)
    for r in ranks:
        if present.get(r) != expected:
            return {"rank": r, "op": expected[0], "seq": seq}
    return {"rank": None, "op": expected[0], "seq": seq}
    # END SOLUTION


# %%
found = first_unfinished(traces)
print(found)

# %% [markdown]
# Grade the diagnosis: the check compares your function with dumps whose answer is known -
# more ranks, NCCL's states, buffers cut at different points, no rank at fault - and with the
# dumps of a fresh run of this job (the fix checks fail until you write section 4):

# %%
from labsupport import check, hint  # noqa: F401

check("297")

# %% [markdown] tags=["reveal"]
# **What happened.** Collectives are matched by their *order* on each rank, not by their name
# or their place in the code: the k-th collective of rank 0 pairs with the k-th collective of
# rank 1. Production's `decode_step` (below) decides, on each rank for itself, whether that
# rank takes part in a collective:

# %% tags=["reveal"]
import inspect

print(inspect.getsource(job.decode_step))
print(f"this variant: {variant.quiet}; answer {first_unfinished(traces)}")

# %% [markdown] tags=["reveal"]
# - In one step one rank had nothing of its own for one collective (no token routed to its
#   experts, or all its requests finished, or a batch it believed unchanged), so it skipped
#   that collective and went straight to the step's next one. The other rank
#   entered the collective and waits for a partner that will never come; the first rank waits
#   in a collective the other never reaches. Neither is broken; they are desynchronised.
# - The flight recorder shows it: every sequence number before agrees and finished; at the
#   first one that did not, the ranks are in different collectives (a rank stuck elsewhere,
#   on the CPU or in a dead-locked data loader, would have no entry there at all). What the
#   program runs there is what followed the previous collective in every earlier step, so
#   the rank whose entry differs is the one that left the order. DETAIL's message only says
#   "they differ", for both ranks.
# - No network fault looks like this: a wrong interface or a firewall fails at
#   `init_process_group` (or on the first collective), on every rank. A link that breaks
#   mid-run leaves every rank inside the *same* collective, which the recorder shows as
#   `rank: None`.
# - With the default timeout the job holds its GPUs, silent, for 10 minutes (NCCL) or 30
#   (gloo); with `TORCH_NCCL_ASYNC_ERROR_HANDLING=3` (NCCL's default) the watchdog then tears
#   the process down, and without a flight recorder the evidence dies with it.

# %% [markdown]
# ## 4. Fix
#
# **Exercise 2 (graded).** Write `decode_step` so that no rank's own state can take it out of
# a collective. `job.StepWork` says what a rank has (`help(job.StepWork)`); production's
# version is `job.decode_step`. `hint("297", 1, "decode_step")` if you want one.

# %% tags=["exercise"]
from labsupport.scenarios.collective_timeout.job import FINISHED


def decode_step(work) -> dict:
    """One decode step on one rank: broadcast the batch from rank 0, all_reduce the hidden
    state, all_gather the next tokens. Returns {"tokens": the batch, "hidden": the summed
    hidden state, "out": the gathered next tokens of all ranks (FINISHED for a rank whose
    requests have all finished)}. `work` is a job.StepWork. It runs inside each rank, where
    torch and torch.distributed are already imported: import them in the function."""
    # BEGIN SOLUTION
    import torch
    import torch.distributed as dist

    if work.rank == 0:
        tokens = work.tokens
    else:
        tokens = torch.empty(work.batch_shape, dtype=torch.int64, device=work.device)
    dist.broadcast(tokens, src=0)  # every rank, every step: its own belief does not matter
    hidden = work.expert_output(tokens)
    if hidden is None:  # nothing routed here: add nothing, but take part
        hidden = torch.zeros(work.hidden_shape, device=work.device)
    dist.all_reduce(hidden)
    if work.has_live_requests:
        mine = work.sample(hidden)
    else:  # every request finished: say so, but take part
        mine = torch.full(work.out_shape, FINISHED, dtype=torch.int64, device=work.device)
    parts = [torch.empty_like(mine) for _ in range(work.world_size)]
    dist.all_gather(parts, mine)
    return {"tokens": tokens, "hidden": hidden, "out": torch.cat(parts)}
    # END SOLUTION


# %% [markdown]
# Run it in both ranks, on a job in which every kind of empty state happens (on both ranks,
# some in the same step), with the recorder on:

# %%
grading_plan = variant.grading_plan()
fixed = runs.with_step(grading_plan, decode_step)
print(fixed.summary())
called = {
    rank: [(c.seq, c.op, c.sizes) for c in flight.collectives(entries)]
    for rank, entries in fixed.traces.items()
}
print("the two ranks ran the same collectives:", len(called) == 2 and called[0] == called[1])
print(flight.table(fixed.traces, last=6))

# %% [markdown]
# The code is fixed; the next desync will come from somewhere else. What matters then is how
# fast the job *says* so, and whether it leaves the evidence behind.
#
# **Exercise 3 (graded).** Return the settings production should start its ranks with: the
# process group's collective timeout and the environment. `slowest_wait_s` is the longest a
# rank of a healthy job waits in a collective (measured below: rank 0's checkpoint, seen from
# the other rank). `hint("297", 1, "job_settings")` if you want one.


# %% tags=["exercise"]
def job_settings(slowest_wait_s: float) -> dict:
    """{"timeout_s": the collective timeout in seconds, "env": {NAME: value}} for a job whose
    healthy ranks wait at most `slowest_wait_s` in a collective. A healthy job must never time
    out; a job that stops must report itself soon, with each rank's record of what it ran."""
    # BEGIN SOLUTION
    return {
        # a margin over the slowest legitimate wait (checkpoints grow, nodes get busy), and
        # not the 10-30 minute default: a stopped job should say so within a few waits
        "timeout_s": 3.0 * slowest_wait_s,
        "env": {
            "TORCH_FR_BUFFER_SIZE": "2000",  # the last 2000 collectives of every group
            "TORCH_NCCL_DUMP_ON_TIMEOUT": "1",  # dump them, on every rank, on a timeout
        },
    }
    # END SOLUTION


# %% [markdown]
# Measure the slowest wait on the fixed job's run, then run production's broken job with your
# settings: it should end by itself, every rank with its dump, and your `first_unfinished` should
# name the rank.

# %%
wait_s = runs.slowest_wait_s(fixed)
settings = job_settings(wait_s)
print(f"slowest healthy wait {wait_s:.2f} s -> settings {settings}")
after = runs.with_settings(plan, settings)
print(after.summary())
print(
    "first_unfinished on its dumps:", first_unfinished(after.traces) if after.traces else "no dumps"
)

# %% [markdown] tags=["reveal"]
# The timeout now fits the job: longer than any wait a healthy rank sees (a checkpoint, a slow
# batch, the first step's compilation), short enough that a desync costs seconds of GPU time,
# not ten minutes. Both ranks dumped, so the report names the rank, the collective and the
# step. The check also runs the healthy job with your settings (no false timeout) and bounds
# the timeout from both sides for longer jobs:

# %%
check("297")

# %% [markdown]
# ## 5. Verify
#
# The same broken job, production's settings against yours, in this notebook: from the last
# step any rank reported to the moment the job told anyone what happened (every rank exited
# with its dump). Production's job had still said nothing when the lab stopped it; the
# default would have kept it silent for 30 minutes (10 with NCCL).

# %%
from labsupport import headline

silent_before = max(r.ended_s for r in incident.ranks) - runs.stall_s(incident)
reported = runs.report_s(after)
silent_after = (reported if reported is not None else after.duration_s) - runs.stall_s(after)
print(f"production's settings: silent {silent_before:.1f} s and counting (stopped by the lab)")
print(f"your settings: every rank exited with its dump {silent_after:.1f} s after the last step")
_ = plots.show(
    job_plots.comparison(
        incident,
        after,
        titles=(
            "production's settings: nothing reported until the lab stopped it",
            f"your settings (timeout {settings['timeout_s']:.1f} s, flight recorder dumped)",
        ),
    )
)
_ = plots.show(
    plots.before_after(
        {"default timeout, no recorder": silent_before, "sized timeout + recorder": silent_after},
        unit="s",
        title="seconds from the job's last step to a report",
    )
)

# %%
_ = headline.record(
    "297",
    metric="seconds a stopped job stays silent",
    before=silent_before,
    after=silent_after,
    unit="s",
    seed=SEED,
    before_is_lower_bound=True,
    default_timeout_s={"gloo": 1800, "nccl": 600},
    timeout_s=settings["timeout_s"],
    slowest_wait_s=wait_s,
    found=first_unfinished(after.traces) if after.traces else None,
    device=device.device_name(),
    rank_device=after.ranks[0].device,
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** You have hit NCCL timeouts in multi-node training or inference. Is
# it usually the firewall or the network card?
#
# **Model answer.** At start-up, often the network: a firewall that blocks NCCL's ports, the
# wrong interface (`NCCL_SOCKET_IFNAME=^docker,lo` or `=eth0`; `GLOO_SOCKET_IFNAME` for gloo),
# an MTU mismatch - and those fail in `init_process_group` or the first collective, on every
# rank. A timeout after hours of healthy steps is usually not the network but a
# **desynchronisation**: one rank did not call the collective the others are waiting in - it
# took a different branch, crashed or hung on the CPU, ran out of memory, or called the
# collectives in another order. I would turn on the flight recorder
# (`TORCH_FR_BUFFER_SIZE=2000`, `TORCH_NCCL_DUMP_ON_TIMEOUT=1`), collect every rank's dump and
# analyse them (`python -m torch.distributed.flight_recorder.fr_trace`): the first collective
# not finished everywhere, and the rank whose entry differs or is missing. Then I fix the code
# so every rank calls every collective, and I size the timeout from the job's slowest
# legitimate wait - not the 10-minute default - so the next one reports in seconds.
#
# **Where the classic answer is wrong or incomplete.** "90 % of NCCL timeouts are the network"
# mixes up two kinds of failure:
#
# - **Init-time vs runtime.** Network and interface faults show at start; runtime timeouts
#   after many steps are mostly desync, and raising the timeout only delays the page.
# - **The default timeout is long.** 10 minutes for NCCL (since PyTorch 2.2, pytorch#110947),
#   30 for other backends: a desync holds every GPU of the job for that long. And too short a
#   timeout kills healthy jobs during a checkpoint or a slow first step: size it from the
#   longest legitimate wait, with a margin.
# - **Evidence.** Without the flight recorder, the only record is one log line per rank with a
#   sequence number. `TORCH_NCCL_ASYNC_ERROR_HANDLING=3` (the default) tears the process down
#   on a timeout; the dump must happen before (`TORCH_NCCL_DUMP_ON_TIMEOUT=1`, files in
#   `TORCH_FR_DUMP_TEMP_FILE`, formerly `TORCH_NCCL_DEBUG_INFO_TEMP_FILE`, plus the rank).
# - **DETAIL is for debugging.** `TORCH_DISTRIBUTED_DEBUG=DETAIL` catches mismatches at once
#   by checking a fingerprint before every collective, at the cost of an extra collective each
#   time; `TORCH_NCCL_DESYNC_DEBUG=1` reports the ranks that did not join a timed-out
#   collective. Neither says which rank took the wrong branch when two ranks disagree.
# - **What it looks like.** NCCL kernels spin while they wait: 100 % GPU utilisation and zero
#   throughput is a hang, not load.
#
# **Follow-up questions an interviewer asks.**
#
# - Two ranks disagree and DETAIL says "rank 0 runs ALLREDUCE, rank 1 runs ALLGATHER". Which
#   one is wrong? (The one that broke the program's order: compare with what followed the
#   previous collective every step, or with the other ranks when there are more than two.)
# - A rank OOMs in the middle of a step. What do the other ranks see, and how fast? (They
#   wait in the next collective until the timeout; torchrun's agent tears the group down when
#   it sees the failed worker, if it watches it.)
# - Where would you see a rank that is stuck on the CPU rather than in a collective?
#   (No entry at that sequence number in its dump; `py-spy dump` shows where it is.)
# - Why do collectives inside `if rank == 0:` blocks hang, while `dist.send/recv` inside them
#   is fine? (Collectives need every rank of the group; point-to-point only the two ends.)
# - Your checkpoint save takes 12 minutes on rank 0 while the others wait in a barrier. What
#   happens with the default NCCL timeout, and what do you change? (They time out at 10
#   minutes; raise the timeout for that phase, or save from every rank, or move the wait out
#   of a collective.)
#
# **References.**
#
# - PyTorch, ProcessGroupNCCL environment variables (`TORCH_NCCL_ASYNC_ERROR_HANDLING`,
#   `TORCH_NCCL_DUMP_ON_TIMEOUT`, `TORCH_NCCL_TRACE_BUFFER_SIZE`, `TORCH_NCCL_DESYNC_DEBUG`):
#   https://docs.pytorch.org/docs/stable/torch_nccl_environment_variables.html
# - Flight Recorder tutorial and its analyser (`torch/distributed/flight_recorder`):
#   https://docs.pytorch.org/tutorials/unstable/flight_recorder_tutorial.html
# - `torch.distributed`, debugging (`TORCH_DISTRIBUTED_DEBUG`), `init_process_group(timeout=)`:
#   https://docs.pytorch.org/docs/stable/distributed.html
# - The defaults: `torch/distributed/constants.py` (`default_pg_timeout` 30 min,
#   `default_pg_nccl_timeout` 10 min) and "Change ProcessGroupNCCL default timeout to 10 min",
#   https://github.com/pytorch/pytorch/pull/110947
# - gloo's interface selection (`GLOO_SOCKET_IFNAME`) and NCCL's (`NCCL_SOCKET_IFNAME`):
#   https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html
# - stas00, ML Engineering, debugging NCCL:
#   https://github.com/stas00/ml-engineering/blob/master/network/debug/README.md
