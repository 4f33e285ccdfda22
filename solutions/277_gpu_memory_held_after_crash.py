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
# # Lab 277 - GPU memory stays used after the server crashed
#
# The model server was killed, its container restarts it, and every restart is refused: the
# card says its memory is in use, and no server is running. You will crash a real server
# container on purpose (its entrypoint as PID 1 of its own PID namespace, worker processes
# that hold the card's memory and a port each), find out from `ps` and the card's process list
# which processes hold what and which of them can be killed, then fix it three ways: in the
# workers, in the entrypoint script, and with the container's PID 1. About 40 minutes; the
# code runs in about a minute.

# %%
from labsupport import device, session

SEED = 0  # which variant of the incident: `srelab start/interview --seed S` sets it
session.begin("277", seed=SEED)
_ = device.banner(
    gpu="real",
    stand_in="a 512 MiB tmpfs as the card: each worker reserves its share with posix_fallocate "
    "and maps it, so, like device memory, it is held by the live process and freed by the "
    "kernel when the process exits; per-process use is read from /proc/PID/maps, the way "
    "nvidia-smi lists compute processes",
)

# %% [markdown]
# ## 1. Incident
#
# > **PAGE - SEV2 - llm-server: 0/1 ready for 25 min** (03:36 UTC)
# >
# > ```
# > $ kubectl logs llm-server | tail -3
# > ValueError: Free memory on device cuda:0 (61.37/79.19 GiB) on startup is less than desired
# > GPU memory utilization (0.90, 71.27 GiB). Decrease GPU memory utilization or reduce GPU
# > memory used by other processes.
# > entrypoint: server exited with status 1; restarting in 1 s
# > ```
# >
# > | panel | value |
# > |---|---|
# > | GPU memory used | 17.8 GiB since 03:11, flat; the server is not running |
# > | restarts of the server | every second since 03:11 (inside the container) |
# > | container restarts (kubelet) | 0 |
# > | `kubectl delete pod` | takes 30 s each time (the grace period), then works |
# >
# > What happened at 03:11: the node's OOM killer killed the server process (`kill -9`
# > semantics; its log ends mid-request). The container's entrypoint is a Python script that
# > restarts the server whenever it exits.
#
# Nothing runs, yet the card is full, and restarting the pod makes it go away (slowly). Who
# holds the memory, and why does every restart inside the container fail?

# %% [markdown]
# ## 2. Reproduce
#
# The container, as it runs in production:
#
# - **PID 1** is the entrypoint script (`supervisor.py`): it starts the server in its own
#   session, waits for it (`Popen.wait()`), and starts it again a second after it exits.
# - **The server** (`server.py`) checks the card's free memory at start the way vLLM does
#   (`--gpu-memory-utilization 0.9`), then starts one worker process per rank, as vLLM starts
#   its engine and GPU workers, plus a detokenizer in some variants; it serves once every
#   worker says it is ready.
# - **Each worker** (`worker.py`) holds its share of the card and listens on its own port
#   (29500 + rank, like a distributed worker's).
#
# It runs for real: the entrypoint is PID 1 of its own PID namespace, with its own mounts and
# network (`labsupport.linux.pidns`), as a container runtime sets it up. On a GPU the workers
# hold real device memory through torch; without one, the stand-in card described in the
# banner. The lab waits until the server serves, SIGKILLs the server (what the OOM killer
# does), lets the entrypoint try its restart, and looks at the container from the node
# (about 10 s):

# %%
from labsupport.scenarios import gpu_memory_held_after_crash as scenario
from labsupport.scenarios.gpu_memory_held_after_crash import incident

v = scenario.variant(SEED)
command = incident.command(v)
print("the container's command:", " ".join(command).replace(" -- ", " \\\n    -- "))
run = incident.run(v, command=command)  # BUG: the entrypoint as it runs in production
print("\n".join(run.log))

# %%
from labsupport import plots
from labsupport.scenarios.gpu_memory_held_after_crash import plots as card_plots

total = run.after.card_total_bytes
_ = plots.show(
    card_plots.card_timeline(
        [("production entrypoint", run.timeline, run.killed_at_s)],
        total_bytes=total,
        title="the card's used memory; the server SIGKILLed at 0",
    )
)

# %% [markdown]
# The server served, was killed at 0, and the entrypoint restarted it: the new server found
# the card's memory in use and refused to start, as in production. Killing the server
# released only some of what the container held.

# %% [markdown]
# ## 3. Diagnose
#
# What on-call can see on the node: the container's processes (`ps -o pid,ppid,stat,rss,comm,
# args`, with the container's PIDs), the card's per-process list (`nvidia-smi
# --query-compute-apps=pid,used_memory --format=csv`: NVML reports host PIDs, which
# `nvidia-smi` inside a container cannot map; the lab maps them through
# `/proc/PID/status` NSpid), and the ports the container's processes listen on (`ss -ltnp`).

# %%
evidence = run.evidence()
print(f"{'PID':>4} {'PPID':>5} {'STAT':<5} {'RSS MiB':>8}  {'COMMAND':<12} ARGS")
for row in evidence["ps"]:
    print(f"{row['pid']:>4} {row['ppid']:>5} {row['stat']:<5} {row['rss_kib'] / 1024:8.1f}  "
          f"{row['name']:<12} {row['cmd'][:60]}")  # fmt: skip
print("\ncard:", evidence["card"])
print("pid, used_memory [MiB]")
for g in evidence["gpu"]:
    print(f"{g['pid']}, {g['used_mib']}")
print("\nlistening:", evidence["listening"])

# %% [markdown]
# The classic answer calls whatever is left after a crash a "zombie". `ps` tells two kinds of
# left-overs apart:
#
# - a **zombie** (STAT `Z`, no RSS, no arguments) has exited; its entry stays in the process
#   table, with its exit status, until its parent calls `wait()`. It cannot be killed: it is
#   dead already.
# - an **orphan** is alive, and its parent is not: the kernel gave it a new parent, PID 1 of
#   its PID namespace.
#
# The evidence is taken while the entrypoint waits to restart the server, so the server is not
# among the processes.
#
# **Exercise 1 (graded).** Sort the container's processes out.


# %% tags=["exercise"]
def diagnose(evidence: dict) -> dict:
    """Which processes hold the card after the crash, and what is each of the others?

    `evidence` has "ps" (rows: pid, ppid, stat, name, cmd, rss_kib; the container's PIDs,
    PID 1 is the entrypoint), "gpu" (rows: pid, used_mib, as the card lists its processes;
    pid None for a process of another container on the same card), "listening", "card" and
    "log". Return {"orphans": [...], "zombies": [...], "holders": [...], "held_mib": ...}:
    orphans, the live processes whose parent died (adopted by PID 1); zombies, the processes
    that have exited and wait to be collected; holders, the live processes of this container
    that hold card memory; held_mib, what the holders hold in total (MiB).
    """
    # BEGIN SOLUTION
    rows = evidence["ps"]
    zombies = sorted(r["pid"] for r in rows if r["stat"].startswith("Z"))
    live = {r["pid"] for r in rows if not r["stat"].startswith("Z")}
    orphans = sorted(
        r["pid"] for r in rows if r["pid"] in live and r["ppid"] == 1 and r["pid"] != 1
    )
    holding = [g for g in evidence["gpu"] if g["pid"] in live]
    return {
        "orphans": orphans,
        "zombies": zombies,
        "holders": sorted(g["pid"] for g in holding),
        "held_mib": round(sum(g["used_mib"] for g in holding), 1),
    }
    # END SOLUTION


# %%
found = diagnose(evidence)
print(found)
names = {r["pid"]: r["name"] for r in evidence["ps"]}
print("holding the card:", [names[p] for p in found["holders"]], f"{found['held_mib']} MiB")
print("zombies:", [names[p] for p in found["zombies"]])

# %% [markdown]
# Grade the diagnosis (the fix checks fail until you write section 4):

# %%
from labsupport import check  # hint("277", 1, "diagnose") if you are stuck

check("277")

# %% [markdown] tags=["reveal"]
# ### What happened
#
# The server's SIGKILL ended the server and nothing else. Its workers are separate processes:
# the kernel re-parented them to the container's PID 1 (`exit` in the kernel finds the new
# parent: a child subreaper among the ancestors, else the namespace's init). Then each did
# what its code does:
#
# - a worker busy computing never asks whether its parent lives. It runs on, an **orphan**,
#   holding its share of the card (on an H100, one such worker held 2666 MiB: its 2 GiB plus
#   its CUDA context; `nvidia-smi` listed it with 2658 MiB) and its port;
# - a worker that reads a pipe from the server saw that pipe close (the kernel closes a dead
#   process's descriptors) and exited. Its memory went back at once. It stays a **zombie**
#   because its new parent, the entrypoint script, never calls `wait()` for children it did
#   not start: `Popen.wait()` waits for one PID. Zombies cost a PID each, no memory;
# - a helper that holds no device memory is an orphan too, harmless to the card, still a
#   process nobody will stop.
#
# Then the entrypoint restarted the server into a card the orphans still held, and the
# server's memory check refused, every second. `kubectl delete pod` took 30 s because PID 1
# is special: the kernel applies no default action to a signal that PID 1 has no handler
# for, so the script ignored SIGTERM until the kubelet sent SIGKILL; that SIGKILL ended PID 1,
# and when PID 1 of a namespace exits, the kernel kills every process left in it: that is why
# deleting the pod always helped. The field case (vLLM, 2026): an orphaned `VLLM::EngineCore`
# held about 10 GB for 26 hours after its API server was killed; every `vllm serve` after it
# failed with this exact message, and `pkill -f api_server` did not find it.

# %% [markdown]
# ## 4. Fix
#
# Three layers, each a real mechanism; the checks run each one against the real processes.
#
# **Exercise 2 (graded): the workers.** A SIGKILLed parent runs no cleanup, no `atexit`, no
# `trap`: only the kernel sees it die. `prctl(PR_SET_PDEATHSIG, sig)` asks the kernel to send
# `sig` to this process when its parent dies (the parent *thread* that created it, in fact:
# spawn workers from the main thread). It has one well-known race: if the parent is already
# dead when the child calls prctl, the child was re-parented already and the signal never
# comes; so check `os.getppid()` after arming it. Python has no `os.prctl`; call libc's.

# %% tags=["exercise"]
import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def worker_start(parent_pid: int) -> None:
    """Called first thing in every worker, with the PID of the server that started it.

    Make sure this worker dies when its parent dies, however the parent dies (SIGKILL
    included), and leave it alone while the parent lives. The parent may already be dead
    when this runs.
    """
    # BEGIN SOLUTION
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # re-parented before the prctl: no signal will come
        os._exit(1)
    # END SOLUTION


# %% [markdown]
# Try it in a contained run: the server starts its workers with your `worker_start`, is
# SIGKILLed, and the run watches the workers; then the same with every worker held back until
# its parent is dead (about 10 s):

# %%
from labsupport.scenarios.gpu_memory_held_after_crash import trials

workers_fixed = trials.run("worker_start", worker_start, v)
for arm, out in workers_fixed.items():
    print(arm, {k: out[k] for k in ("workers", "gone_s", "used_before", "used_after") if k in out})

# %% [markdown]
# **Exercise 3 (graded): the entrypoint script.** When the server exits, the script knows it
# (its `wait()` returns) and can clean up before starting it again. It started the server in
# a new session, so the server's PID is also the ID of its process group, and the workers the
# server started are in that group, which outlives its leader. A log shipper runs beside the
# server in a session of its own: it must survive the cleanup.


# %% tags=["exercise"]
def before_restart(server_pgid: int) -> None:
    """Called by the entrypoint after the server exited, before it starts it again.

    `server_pgid` is the process group the server led. Make sure nothing the dead server
    started keeps running; touch nothing else. The group may be empty already.
    """
    # BEGIN SOLUTION
    try:
        os.killpg(server_pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # nothing left in that group
    # END SOLUTION


# %%
restart_fixed = trials.run("before_restart", before_restart, v)
print({k: restart_fixed.get(k) for k in ("gone_s", "shipper_alive", "restarted")})

# %% [markdown]
# **Exercise 4 (graded): the container's PID 1.** `tini` (Debian's `tini` package; Docker's
# `--init` runs the same program) is made to be PID 1: it starts one child, reaps every
# zombie it adopts and forwards the signals it receives to the child (`-g`: to the child's
# process group). It does not kill orphans, and that is why the restart loop has to go: in
# Kubernetes the kubelet restarts the container, and a container whose PID 1 exits loses
# every process it had, orphans included.


# %% tags=["exercise"]
def entrypoint(command: list[str]) -> list[str]:
    """The container's command line (ENTRYPOINT + CMD) that replaces `command`.

    `command` is the production one: the entrypoint script, then "--", then the server's own
    command line. Return an init program and its options, then "--", then exactly `command`
    or exactly the server's part of it (the lab runs nothing else). After the server dies
    nothing of it may stay; SIGTERM to PID 1 must stop the container.
    """
    # BEGIN SOLUTION
    server = command[command.index("--") + 1 :]
    return ["tini", "-g", "--", *server]
    # END SOLUTION


# %%
fixed_argv = entrypoint(command)
crash_fixed = incident.run(v, command=command, entrypoint=fixed_argv, action="crash")
stop_fixed = incident.run(v, command=command, entrypoint=fixed_argv, action="stop")
print("after the crash:", len(crash_fixed.after.ps), "processes,",
      f"{crash_fixed.held_after_bytes / 2**20:.0f} MiB held; container ended at "
      f"{crash_fixed.exited_at_s} s")  # fmt: skip
print(f"SIGTERM to PID 1: gone after {stop_fixed.stop_s} s")

# %%
check("277")

# %% [markdown]
# ## 5. Verify
#
# The same crash, the production container against yours, in one run (about 15 s), and
# SIGTERM to each container's PID 1. The headline is the card memory the next server finds
# free after the crash.

# %%
before_run = incident.run(v, command=command)
after_run = incident.run(v, command=command, entrypoint=fixed_argv)
stops = {
    name: incident.run(v, command=command, entrypoint=argv, action="stop")
    for name, argv in (("production", command), ("yours", fixed_argv))
}
_ = plots.show(
    card_plots.card_timeline(
        [
            ("production entrypoint", before_run.timeline, before_run.killed_at_s),
            ("tini, no restart loop", after_run.timeline, after_run.killed_at_s),
        ],
        total_bytes=total,
        title="the card's used memory around the server's SIGKILL",
    )
)
for name, r in stops.items():
    print(f"SIGTERM to PID 1, {name}: " + ("ignored (still running after 3 s)" if r.stop_ignored
                                          else f"gone after {r.stop_s} s"))  # fmt: skip

# %%
from labsupport import headline

mib = 2**20
free_before = (total - before_run.held_after_bytes - before_run.baseline_used_bytes) / mib
free_after = (total - after_run.held_after_bytes - after_run.baseline_used_bytes) / mib
need = before_run.need_bytes / mib
_ = plots.show(
    plots.before_after(
        {"production": free_before, "tini, no restart loop": free_after},
        unit="MiB",
        title=f"card memory free after the crash (the server needs {need:.0f} MiB)",
    )
)
_ = headline.record(
    "277",
    metric="card memory free for the restarted server",
    before=round(free_before, 1),
    after=round(free_after, 1),
    unit="MiB",
    higher_is_better=True,
    need_mib=round(need, 1),
    held_before_mib=round(before_run.held_after_bytes / mib, 1),
    held_after_mib=round(after_run.held_after_bytes / mib, 1),
    zombies_before=sum(r["stat"].startswith("Z") for r in before_run.after.ps),
    sigterm_production_ignored=stops["production"].stop_ignored,
    sigterm_yours_s=stops["yours"].stop_s,
    worker_start_gone_s=max(workers_fixed["parent_killed"]["gone_s"]),
    card="GPU" if run.real_gpu else "stand-in tmpfs card",
    device=device.device_name(),
)

# %% [markdown]
# ## 6. Debrief
#
# **Interview question.** Have you met "zombie processes"? The main process died, but child
# processes still hold GPU memory and the restart fails. How does your start-up script
# handle it?
#
# **Model answer.** What holds the memory is not a zombie but an orphan: a live worker whose
# parent died and that was re-parented to PID 1. A zombie has exited and holds no memory;
# it only waits to be reaped. I would find the holders with `nvidia-smi
# --query-compute-apps=pid,used_memory` (host PIDs) and `ps -o pid,ppid,stat` (STAT Z =
# zombie, PPID 1 = orphan), kill the orphans, and fix it at three levels. In the workers,
# `prctl(PR_SET_PDEATHSIG, SIGKILL)` with a `getppid()` check right after, so the kernel kills
# them when the server dies, however it dies. In whatever restarts the server, kill the old
# server's process group (`killpg`) before starting a new one. And in the container, an init
# as PID 1 (`tini`, or `docker run --init`) to reap zombies and forward SIGTERM, with no
# restart loop inside the container: let it exit, the orchestrator restarts it, and the
# kernel kills everything in a PID namespace whose init exits.
#
# **Where the classic answer falls short.** "Use tini as PID 1 to reap zombies, and
# `trap 'kill $(jobs -p)' EXIT` in the start script" leaves out:
#
# - **Zombies hold no GPU memory.** tini fixes zombies and signal forwarding; it does not
#   kill orphans. With an in-container restart loop, tini alone leaves the memory held.
# - **A trap cannot run on SIGKILL** (the OOM killer's signal), and `jobs -p` knows only the
#   shell's own jobs, not the workers they started.
# - **The kernel can do it:** `PR_SET_PDEATHSIG` (per child, with the race check), process
#   groups and `killpg`, `systemd`'s `KillMode=control-group`, or a PID namespace whose init
#   exits.
# - **PID 1 ignores signals it has no handler for**, which is why `docker stop` waited for the
#   grace period: tini forwards them.
# - **NVML shows host PIDs.** Inside a container `nvidia-smi` may list no processes, or PIDs
#   that do not exist there; look from the node, or map with `/proc/PID/status` NSpid.
#
# **Follow-up questions an interviewer asks.**
#
# - Your worker sets PDEATHSIG, and the server is multi-threaded: the thread that spawned
#   the worker exits. What happens? (The signal is sent: it follows the parent *thread*.)
# - `kill -9` on a zombie does nothing. How do you make zombies go? (Make the parent reap, or
#   kill the parent so that PID 1 adopts and reaps them: with tini it does.)
# - What does `tini -s` do, and when do you need it? (Registers as a child subreaper when it
#   is not PID 1, e.g. under `docker run --pid=host` or another init.)
# - How would you alert on this before the page? (GPU memory used while the server's
#   `/health` fails; processes with PPID 1 holding device memory; the restart counter.)
#
# **References.**
#
# - prctl(2), PR_SET_PDEATHSIG: https://man7.org/linux/man-pages/man2/prctl.2.html
# - wait(2), zombies and reaping: https://man7.org/linux/man-pages/man2/wait.2.html
# - pid_namespaces(7), the namespace's init and signals:
#   https://man7.org/linux/man-pages/man7/pid_namespaces.7.html
# - tini, README (subreaper, `-g`): https://github.com/krallin/tini
# - NVIDIA, `nvidia-smi --query-compute-apps`:
#   https://docs.nvidia.com/deploy/nvidia-smi/index.html
# - Kubernetes, pod termination (SIGTERM, grace period, SIGKILL):
#   https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination
